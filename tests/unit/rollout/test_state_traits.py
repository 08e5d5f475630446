"""One table says what each per-server state means (status.STATE_TRAITS): every state has its row, every
set of states is derived from it, and the docs say what the table says.

Adding a state touches its row, the planner's rule for it and the README's list; anything forgotten
fails here rather than silently (a state in no set, a set the docs describe otherwise).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic.alias_generators import to_camel

from cloudeye_operator import status_view
from cloudeye_operator.rollout import claims, status
from cloudeye_operator.rollout.status import (
    STATE_TRAITS,
    SUMMARY_FIELDS,
    ClaimKind,
    InstanceState,
    StateTraits,
    states_where,
)

README = Path(__file__).resolve().parents[3] / "README.md"

DERIVED: dict[str, Callable[[StateTraits], bool]] = {
    "IN_FLIGHT": lambda t: t.in_flight,
    "LIVE": lambda t: t.live,
    "TASK_STATES": lambda t: t.polled,
    "NOT_STARTED": lambda t: t.not_started,
    "HELD_FAILURES": lambda t: t.held_failure,
    "TERMINAL": lambda t: t.terminal,
    "PLAIN_STATES": lambda t: t.plain_message,
    "EXPLAINED_STATES": lambda t: t.explained,
}


def test_every_state_has_exactly_one_row() -> None:
    assert list(STATE_TRAITS) == list(InstanceState)  # a dict: one row each, in the enum's order
    assert all(isinstance(traits, StateTraits) for traits in STATE_TRAITS.values())
    assert all(traits.meaning.strip() and "\n" not in traits.meaning for traits in STATE_TRAITS.values())


@pytest.mark.parametrize("name", DERIVED)
def test_each_set_is_derived_from_the_table(name: str) -> None:
    assert getattr(status, name) == states_where(DERIVED[name])


def test_every_state_is_in_exactly_one_stage() -> None:
    for state, t in STATE_TRAITS.items():
        stages = [t.not_started, t.in_flight, t.held_failure, t.terminal]
        assert stages.count(True) == 1, state


def test_the_traits_are_consistent() -> None:
    for state, t in STATE_TRAITS.items():
        assert not t.polled or t.live, f"{state}: a polled task is live work"
        assert not t.live or t.in_flight, f"{state}: live work holds a maxInFlight slot"
        assert (t.claim is ClaimKind.LIVE) == t.live, state
        assert t.claim is not ClaimKind.QUEUED or not t.terminal, state
        assert not (t.plain_message and t.explained), state
        assert t.summary_field in SUMMARY_FIELDS[1:], state  # [0] is the total
        assert status.SUMMARY_FIELD[state] == t.summary_field


@pytest.mark.parametrize("state", InstanceState)
def test_claims_follow_the_table(state: InstanceState) -> None:
    spec, entries = (
        {"instances": [{"id": "a"}]},
        {"phase": "Progressing", "instances": {"a": {"state": state}}},
    )
    claim = claims.claims_of("ns/r", "2026-01-01T00:00:00Z", spec, entries).get("a")
    kind = ClaimKind.NONE if claim is None else ClaimKind.LIVE if claim.live else ClaimKind.QUEUED
    assert kind is STATE_TRAITS[state].claim


def test_the_status_view_reads_the_table() -> None:
    styles = {s.value: t.style for s, t in STATE_TRAITS.items()}
    assert styles == status_view.STATE_STYLES
    assert {s.value for s, t in STATE_TRAITS.items() if t.trouble} == status_view.TROUBLE


def _docstring_table() -> dict[str, frozenset[InstanceState]]:
    """The list of sets in status.py's module docstring: `    NAME   STATE STATE ...`."""
    doc = status.__doc__ or ""
    start = doc.index("every set of states the operator uses is derived from")
    rows: dict[str, frozenset[InstanceState]] = {}
    for line in doc[start:].split("\n\n", 2)[1].splitlines():
        match = re.fullmatch(r" {4}(\S+(?: [a-z]+)?)\s+([A-Z_ ]+)", line)
        assert match, f"not a row of the docstring's table: {line!r}"
        rows[match[1]] = frozenset(InstanceState(word) for word in match[2].split())
    return rows


def _claiming(kind: ClaimKind) -> frozenset[InstanceState]:
    return states_where(lambda t: t.claim is kind)


def _counted_as(field: str) -> frozenset[InstanceState]:
    return states_where(lambda t: t.summary_field == field)


def test_the_docstring_says_what_the_table_says() -> None:
    expected = {name: getattr(status, name) for name in DERIVED}
    expected |= {f"claim {kind.value}": _claiming(kind) for kind in ClaimKind}
    expected["trouble"] = states_where(lambda t: t.trouble)
    expected |= {f"summary.{to_camel(name)}": _counted_as(name) for name in SUMMARY_FIELDS[1:]}
    assert _docstring_table() == expected


def test_the_summary_docs_name_their_states() -> None:
    # Summary's field docstrings are read by people: they must not drift from the table either.
    source = Path(status.__file__).read_text(encoding="utf-8")
    body = source[source.index("\nclass Summary") :].split("\n\n\n", 1)[0]
    for name in ("succeeded", "failed", "in_flight", "pending"):
        doc = re.search(rf'    {name}: int = 0\n    """(.*?)"""', body, re.S)
        assert doc, name
        named = frozenset(InstanceState(word) for word in re.findall(r"\b[A-Z][A-Z_]+\b", doc[1]))
        assert named == _counted_as(name), name


def test_the_readme_lists_every_state() -> None:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## The AgentRollout resource") :]
    start = section.index("Per-server states:")
    sentence = section[start : section.index(".", start)]
    listed = re.findall(r"`([A-Z_]+)`", sentence)
    assert sorted(listed) == sorted(state.value for state in InstanceState)
