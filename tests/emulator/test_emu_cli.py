"""The real console script: `cloudeye-operator emulator` as a subprocess, and its option handling."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from click.testing import CliRunner

from cloudeye_operator.cli import main
from cloudeye_operator.emulator import scenario as scenario_module
from cloudeye_operator.emulator.defaults import DEFAULT_PROJECT_ID, READY_LINE_PREFIX

CONSOLE_SCRIPT = Path(sys.executable).parent / "cloudeye-operator"
DEMO = Path(scenario_module.__file__).parent / "scenarios" / "demo.yaml"
READY_DEADLINE_SECONDS = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def read_lines(stream: object, lines: queue.Queue[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        lines.put(line)


def test_console_script_serves_until_sigterm() -> None:
    port = free_port()
    env = {**os.environ, "CLOUDEYE_EMULATOR_TOKEN": "cli-token", "CLOUDEYE_EMULATOR_TIME_SCALE": "0"}
    process = subprocess.Popen(
        [str(CONSOLE_SCRIPT), "emulator", "--port", str(port), "--scenario", str(DEMO)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=read_lines, args=(process.stdout, lines), daemon=True).start()
        deadline = time.monotonic() + READY_DEADLINE_SECONDS
        url = None
        seen = []
        while url is None:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no ready line within {READY_DEADLINE_SECONDS}s: {seen}"
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
            seen.append(line)
            if line.startswith(READY_LINE_PREFIX):
                url = line[len(READY_LINE_PREFIX) :].strip()
        assert url == f"http://127.0.0.1:{port}"
        headers = {"X-Auth-Token": "cli-token"}
        with httpx.Client(base_url=url, headers=headers, timeout=10) as client:
            created = client.post(
                f"/v3/{DEFAULT_PROJECT_ID}/agent-invocations/batch-create",
                json={"invocation_type": "UPDATE", "instance_ids": ["srv-0001", "legacy-0001"]},
            )
            assert created.status_code == 201, created.text
            assert [i["ret_status"] for i in created.json()["invocations"]] == ["successful", "error"]
            listed = client.get(f"/v3/{DEFAULT_PROJECT_ID}/agent-invocations")
            assert listed.json()["count"] == 1
            assert listed.json()["invocations"][0]["invocation_status"] == "PENDING"  # frozen clock
            assert client.get("/_emulator/health").json()["servers"] == 30
            assert (
                client.get(
                    f"/v3/{DEFAULT_PROJECT_ID}/agent-invocations", headers={"X-Auth-Token": "x"}
                ).status_code
                == 401
            )
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)


def test_help_lists_the_options() -> None:
    result = CliRunner().invoke(main, ["emulator", "--help"])
    assert result.exit_code == 0
    for option in (
        "--host", "--port", "--scenario", "--project-id", "--token", "--access-key", "--secret-key",
        "--iam-user", "--iam-password", "--iam-domain", "--time-scale",
    ):  # fmt: skip
        assert option in result.output
    assert "emulator-secret-key" not in result.output  # secret defaults are not shown


def test_bad_scenario_file_is_a_usage_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("fleet: [{id: a}, {id: a}]\n")
    result = CliRunner().invoke(main, ["emulator", "--scenario", str(bad)])
    assert result.exit_code == 2
    assert "duplicate server id a" in result.output
    assert "--scenario" in result.output
