"""Maintenance windows and soak time (rollout/windows.py, planner step 9): the gate as a table, then
cycle by cycle on the in-memory cloud. T0 (2025-03-01 12:00 UTC) is a Saturday."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cloudeye_operator.rollout import SpecError
from cloudeye_operator.rollout.status import InstanceState
from cloudeye_operator.rollout.windows import Window, soak_gate, window_gate

from ._sim import T0, Sim, at, cond, ids, make_spec, reasons

I = ids(6)  # noqa: E741


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def window(start: str, end: str, zone: str = "UTC", days: tuple[str, ...] = ()) -> Window:
    entry = {"days": list(days), "startTime": start, "endTime": end, "timeZone": zone}
    return Window.model_validate_json(json.dumps(entry))  # as the spec is read: JSON mode


WEEKNIGHTS_BERLIN = window(
    "22:00", "04:00", "Europe/Berlin", ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")
)


@pytest.mark.parametrize(
    ("windows", "now", "open_", "opens_at", "closes_at"),
    [
        # no window: always open
        ((), "2025-03-01T12:00", True, None, None),
        # Friday 22:00 CET to Saturday 04:00 CET (crosses midnight), Saturday 02:00 UTC = 03:00 CET
        ((WEEKNIGHTS_BERLIN,), "2025-03-01T02:00", True, None, "2025-03-01T03:00"),
        # Saturday noon: the next opens Monday 22:00 CET
        ((WEEKNIGHTS_BERLIN,), "2025-03-01T12:00", False, "2025-03-03T21:00", None),
        # the edges: open at the start, closed at the end
        ((window("09:00", "10:00"),), "2025-03-01T09:00", True, None, "2025-03-01T10:00"),
        ((window("09:00", "10:00"),), "2025-03-01T10:00", False, "2025-03-02T09:00", None),
        # 00:00-00:00 is the whole day
        ((window("00:00", "00:00", days=("Saturday",)),), "2025-03-01T23:59", True, None, "2025-03-02T00:00"),
        # two windows: the earliest next opening; inside either is open
        (
            (window("09:00", "10:00"), window("13:00", "14:00")),
            "2025-03-01T12:00",
            False,
            "2025-03-01T13:00",
            None,
        ),
        # spring forward in Berlin (2025-03-30, 02:00 CET -> 03:00 CEST): 01:00-05:00 lasts 3 hours
        ((window("01:00", "05:00", "Europe/Berlin"),), "2025-03-30T02:59", True, None, "2025-03-30T03:00"),
        ((window("01:00", "05:00", "Europe/Berlin"),), "2025-03-29T23:59", False, "2025-03-30T00:00", None),
        # an edge in the skipped hour is the moment the clocks jump (03:00 CEST = 01:00 UTC)
        ((window("02:30", "03:30", "Europe/Berlin"),), "2025-03-30T00:30", False, "2025-03-30T01:00", None),
        ((window("02:30", "03:30", "Europe/Berlin"),), "2025-03-30T01:15", True, None, "2025-03-30T01:30"),
        # fall back (2025-10-26, 03:00 CEST -> 02:00 CET): 01:00-05:00 lasts 5 hours
        ((window("01:00", "05:00", "Europe/Berlin"),), "2025-10-26T03:30", True, None, "2025-10-26T04:00"),
        # an edge in the repeated hour is its first occurrence (02:30 CEST = 00:30 UTC)
        ((window("02:30", "02:45", "Europe/Berlin"),), "2025-10-26T00:00", False, "2025-10-26T00:30", None),
        # US spring forward (2025-03-09 in New York), a window on that Sunday only
        (
            (window("01:30", "03:30", "America/New_York", ("Sunday",)),),
            "2025-03-09T07:00",
            True,
            None,
            "2025-03-09T07:30",
        ),
    ],
)
def test_the_window_gate(
    windows: tuple[Window, ...], now: str, open_: bool, opens_at: str | None, closes_at: str | None
) -> None:
    gate = window_gate(windows, utc(now))
    assert gate.open is open_
    assert gate.opens_at == (utc(opens_at) if opens_at else None)
    assert gate.closes_at == (utc(closes_at) if closes_at else None)
    if not open_:
        assert "outside strategy.windows" in gate.why


def test_a_window_whose_days_never_come_says_so() -> None:
    # every day has a window, but a closed gate always names the next opening within a week
    gate = window_gate((window("10:00", "11:00", days=("Tuesday",)),), utc("2025-03-04T11:00"))
    assert gate.opens_at == utc("2025-03-11T10:00")


def test_the_soak_gate() -> None:
    ended = T0
    assert soak_gate(0, ended, at(1)).open
    assert soak_gate(600, None, at(1)).open  # no wave ended yet: the first starts at once
    closed = soak_gate(600, ended, at(599))
    assert not closed.open
    assert closed.opens_at == at(600)
    assert "strategy.soakSeconds 600" in closed.why
    assert soak_gate(600, ended, at(600)).open


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({"startTime": "22:00", "endTime": "04:00", "timeZone": "Mars/Olympus"}, "timeZone"),
        ({"startTime": "24:00", "endTime": "04:00"}, "startTime"),
        ({"startTime": "2:00", "endTime": "04:00"}, "startTime"),
        ({"startTime": "22:00"}, "endTime"),
        ({"startTime": "22:00", "endTime": "04:00", "days": ["Funday"]}, "days"),
        ({"startTime": "22:00", "endTime": "04:00", "start": "x"}, "start"),
    ],
)
def test_a_bad_window_is_refused_naming_its_field(entry: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as caught:
        make_spec(2, version="2.7.2", strategy={"windows": [entry]})
    assert caught.value.field.startswith(f"spec.strategy.windows[0].{field}"), caught.value.field


def test_soak_seconds_are_bounded() -> None:
    with pytest.raises(SpecError) as caught:
        make_spec(2, version="2.7.2", strategy={"soakSeconds": -1})
    assert caught.value.field == "spec.strategy.soakSeconds"


# --- the planner: outside a window nothing new starts ---------------------------------------------

NOON_TO_ONE = {"startTime": "13:00", "endTime": "14:00", "timeZone": "UTC"}  # T0 is 12:00 UTC


def _windowed(n: int = 2, **strategy: Any) -> Sim:
    return Sim(make_spec(I[:n], version="2.7.2", strategy={"windows": [NOON_TO_ONE], **strategy}))


def test_a_rollout_applied_outside_its_window_starts_nothing_until_it_opens() -> None:
    sim = _windowed(2, progressDeadlineSeconds=600)
    p = sim.cycle(at(0))
    assert not p.tasks
    assert cond(sim.status, "Reconciling") == ("True", "OutsideWindow")
    assert sim.status.next_window_at == at(3600)
    assert "the next opens at 2025-03-01T13:00:00+00:00" in next(
        c.message for c in sim.status.conditions if c.type == "Reconciling"
    )
    assert "OutsideWindow" in reasons(p)
    assert p.requeue_after == 3600  # no polling while only time can open it
    # An hour of waiting is not a lack of progress: the 600 s deadline does not fire.
    p = sim.cycle(at(3599))
    assert not p.tasks
    assert cond(sim.status, "Stalled")[0] == "False"
    p = sim.cycle(at(3600))
    assert [a.ids for a in p.tasks] == [tuple(I[:2])]
    assert sim.status.next_window_at is None
    assert cond(sim.status, "Reconciling") == ("True", "Progressing")


def test_tasks_in_flight_when_the_window_closes_are_watched_and_retries_wait_for_the_next() -> None:
    sim = Sim(
        make_spec(
            I[:3],
            version="2.7.2",
            strategy={
                "windows": [NOON_TO_ONE],
                "maxInFlight": 2,
                "retry": {"limit": 2, "backoffSeconds": 10},
            },
        )
    )
    sim.cycle(at(3600))  # 13:00: the window opens, two start
    assert sorted(sim.status.instances[i].state for i in I[:2]) == [InstanceState.PENDING] * 2
    sim.cloud.finish([I[0]], "SUCCEEDED")
    sim.cloud.finish([I[1]], "FAILED")
    p = sim.cycle(at(7200))  # 14:00: closed; the outcomes are still observed
    assert not p.tasks
    assert sim.status.instances[I[0]].state is InstanceState.SUCCEEDED
    assert sim.status.instances[I[1]].state in (InstanceState.RETRY_WAIT, InstanceState.FAILED)
    assert sim.status.instances[I[2]].state is InstanceState.WAITING
    assert cond(sim.status, "Reconciling") == ("True", "OutsideWindow")
    assert sim.status.next_window_at == at(3600 + 86_400)
    p = sim.cycle(at(3600 + 86_400))  # the next day at 13:00: the retry and the last server
    assert sorted(a.verb.value for a in p.tasks) == ["create", "retry"]


def test_in_flight_tasks_outside_the_window_keep_it_progressing_with_a_note() -> None:
    sim = _windowed(3, maxInFlight=1, progressDeadlineSeconds=86_400)
    sim.cycle(at(3600))
    p = sim.cycle(at(7200))  # closed with one task in flight
    assert not p.tasks
    reconciling = next(c for c in sim.status.conditions if c.type == "Reconciling")
    assert reconciling.reason == "Progressing"
    assert "nothing new starts until then" in reconciling.message
    assert p.requeue_after == 15  # polled as usual


# --- soak time between waves ------------------------------------------------------------------------


def test_each_wave_waits_soak_seconds_after_the_previous_one_ended() -> None:
    sim = Sim(make_spec(I[:5], version="2.7.2", strategy={"maxInFlight": 2, "soakSeconds": 600}))
    p = sim.cycle(at(0))
    assert [a.ids for a in p.tasks] == [tuple(I[:2])]
    sim.cloud.finish([I[0]], "SUCCEEDED")
    p = sim.cycle(at(15))  # one slot free, but waves are whole: the next waits for the other
    assert not p.tasks
    sim.cloud.finish([I[1]], "SUCCEEDED")
    p = sim.cycle(at(30))  # the wave ended now
    assert not p.tasks
    assert sim.status.wave_ended_at == at(30)
    assert cond(sim.status, "Reconciling") == ("True", "Soaking")
    assert "Soaking" in reasons(p)
    assert p.requeue_after == 600
    assert not sim.cycle(at(629)).tasks
    p = sim.cycle(at(630))
    assert [a.ids for a in p.tasks] == [tuple(I[2:4])]
    sim.cloud.finish(I[2:4], "SUCCEEDED")
    sim.cycle(at(645))
    assert not sim.cycle(at(1244)).tasks
    p = sim.cycle(at(1245))
    assert [a.ids for a in p.tasks] == [(I[4],)]
    sim.cloud.finish([I[4]], "SUCCEEDED")
    sim.cycle(at(1260))
    assert cond(sim.status, "Ready") == ("True", "Succeeded")


def test_a_wave_with_a_retry_ends_when_its_retry_does() -> None:
    sim = Sim(
        make_spec(
            I[:3],
            version="2.7.2",
            strategy={"maxInFlight": 2, "soakSeconds": 300, "retry": {"limit": 1, "backoffSeconds": 10}},
        )
    )
    sim.cycle(at(0))
    sim.cloud.finish([I[0]], "SUCCEEDED")
    sim.cloud.finish([I[1]], "FAILED")
    sim.cycle(at(15))
    p = sim.cycle(at(25))  # the retry is due: it goes (it belongs to this wave); no new server does
    assert [a.verb.value for a in p.tasks] == ["retry"]
    sim.cloud.finish([I[1]], "SUCCEEDED")
    p = sim.cycle(at(40))
    assert not p.tasks
    assert sim.status.wave_ended_at == at(40)
    p = sim.cycle(at(340))
    assert [a.ids for a in p.tasks] == [(I[2],)]


def test_without_soak_seconds_a_freed_slot_is_refilled_at_once() -> None:
    sim = Sim(make_spec(I[:3], version="2.7.2", strategy={"maxInFlight": 2}))
    sim.cycle(at(0))
    sim.cloud.finish([I[0]], "SUCCEEDED")
    p = sim.cycle(at(15))
    assert [a.ids for a in p.tasks] == [(I[2],)]


def test_a_window_and_a_soak_together_wait_for_both() -> None:
    sim = _windowed(4, maxInFlight=2, soakSeconds=3000)
    sim.cycle(at(3600))  # 13:00
    sim.cloud.finish(I[:2], "SUCCEEDED")
    sim.cycle(at(3615))  # the wave ended: soak until 13:50:15, inside the window
    p = sim.cycle(at(3600 + 3015))
    assert [a.ids for a in p.tasks] == [tuple(I[2:4])]
    sim.cloud.finish(I[2:4], "SUCCEEDED")
    sim.cycle(at(3600 + 3030))
    assert cond(sim.status, "Ready") == ("True", "Succeeded")
    assert sim.status.next_window_at is None


def test_time_zone_database_is_the_packaged_one() -> None:
    # The slim image has no /usr/share/zoneinfo: zoneinfo must find the tzdata package.
    import importlib.util

    assert importlib.util.find_spec("tzdata") is not None
    assert window_gate((window("00:00", "00:00", "Asia/Shanghai"),), T0 + timedelta(hours=1)).open
