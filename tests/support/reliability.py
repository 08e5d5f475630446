"""The reliability suite's figures and fleet (tests/reliability/; how the suite works is in its
conftest.py docstring).

Every scenario records its figures with `figures.record(...)` (the `figures` fixture is one `Figures`
for the session); with CLOUDEYE_RELIABILITY_TABLE=PATH set, the session writes them as a Markdown
table to PATH (`pytest_sessionfinish` in tests/reliability/conftest.py; see RELIABILITY.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.support.e2e import Operator
from tests.support.harness import fleet_scenario

TABLE_ENV = "CLOUDEYE_RELIABILITY_TABLE"

SCENARIO = fleet_scenario(seed=11)  # the in-process fleet (tests/support/harness.py)


@dataclass
class Row:
    area: str
    scenario: str
    produced: str
    held: str
    counts: dict[str, Any]
    test: str


@dataclass
class Figures:
    rows: list[Row] = field(default_factory=list)

    def record(
        self, area: str, scenario: str, produced: str, held: str, test: str = "", **counts: Any
    ) -> None:
        self.rows.append(Row(area, scenario, produced, held, counts, test))

    def markdown(self) -> str:
        lines = [
            "| area | scenario | how it is produced | what held | figures |",
            "| --- | --- | --- | --- | --- |",
        ]
        for r in self.rows:
            figures = ", ".join(f"{k}={v}" for k, v in r.counts.items())
            lines.append(f"| {r.area} | {r.scenario} | {r.produced} | {r.held} | {figures} |")
        return "\n".join(lines) + "\n"


Launcher = Operator  # the e2e operator process, here scoped to one namespace
