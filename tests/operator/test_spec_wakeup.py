"""The spec wakeup (handlers.wake_on_spec_change): a watch-event handler that wakes a rollout's daemon
when metadata.generation moves, and only then, so that kopf keeps no diff base (a copy of the whole
spec, which does not fit an annotation for 10,000 servers)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import kopf
import pytest

from cloudeye_operator import handlers, kube
from cloudeye_operator.handlers import (
    STALE_DIFF_BASE,
    WAKEUP_HANDLER_ID,
    OperatorMemo,
    wake_on_spec_change,
)
from cloudeye_operator.reconciler import Cycle, Rollout
from cloudeye_operator.rollout.status import RolloutStatus

UID = "0f5c7a1e-uid"
WAKE: Any = wake_on_spec_change  # called as kopf calls it, with the arguments it takes
DRIVE: Any = handlers.drive


class StubDeps:
    def __init__(self) -> None:
        self.forgotten: list[tuple[str, str]] = []

    def forget(self, namespace: str, name: str) -> None:
        self.forgotten.append((namespace, name))


def operator_memo() -> dict[str, Any]:
    """kopf's memo as the startup handler leaves it (settings and deps are not used by the wakeup)."""
    return {"cloudeye": OperatorMemo(settings=cast(Any, None), deps=cast(Any, StubDeps()))}


def state(memo: dict[str, Any]) -> OperatorMemo:
    found = memo["cloudeye"]
    assert isinstance(found, OperatorMemo)
    return found


def meta(generation: int, **annotations: str) -> dict[str, Any]:
    return {
        "name": "web",
        "namespace": "default",
        "uid": UID,
        "generation": generation,
        "annotations": annotations,
    }


async def event(
    memo: dict[str, Any], generation: int, type_: str | None = "MODIFIED", **annotations: str
) -> kopf.Patch:
    """One watch event through the handler, as kopf calls it; the patch it leaves for kopf to send."""
    patch = kopf.Patch()
    await WAKE(
        type=type_,
        uid=UID,
        meta=meta(generation, **annotations),
        memo=memo,
        patch=patch,
        logger=logging.getLogger("test"),
    )
    return patch


async def test_a_generation_change_wakes_the_daemon_a_status_write_does_not() -> None:
    memo = operator_memo()
    wakeup = state(memo).wakeups.setdefault(UID, asyncio.Event())
    await event(memo, 1, type_=None)  # the initial listing
    assert not wakeup.is_set()
    await event(memo, 1)  # the daemon's own status write: the generation stays
    await event(memo, 1)
    assert not wakeup.is_set()
    await event(memo, 2)  # a spec edit
    assert wakeup.is_set()
    wakeup.clear()
    await event(memo, 2)  # the status write that observes it
    assert not wakeup.is_set()


async def test_the_first_event_seen_wakes_nothing_whatever_its_generation() -> None:
    """After an operator restart the memo is empty: the daemon reads the spec as it is anyway."""
    memo = operator_memo()
    wakeup = state(memo).wakeups.setdefault(UID, asyncio.Event())
    await event(memo, 7, type_=None)
    assert not wakeup.is_set()
    assert state(memo).generations == {UID: 7}


async def test_a_settled_rollout_has_no_daemon_to_wake_but_its_generation_is_followed() -> None:
    memo = operator_memo()
    await event(memo, 3)
    await event(memo, 4)  # no wakeup registered: nothing to set, nothing raised
    assert state(memo).generations == {UID: 4}
    wakeup = state(memo).wakeups.setdefault(UID, asyncio.Event())  # kopf spawned the daemon
    await event(memo, 5)
    assert wakeup.is_set()


async def test_a_deleted_rollout_is_forgotten() -> None:
    memo = operator_memo()
    await event(memo, 2)
    await event(memo, 2, type_="DELETED")
    assert state(memo).generations == {}


async def test_the_diff_base_an_earlier_version_left_is_removed_and_nothing_else_is_touched() -> None:
    memo = operator_memo()
    stale = await event(memo, 1, **{STALE_DIFF_BASE: '{"spec":{}}\n', "team": "web"})
    assert stale == {"metadata": {"annotations": {STALE_DIFF_BASE: None}}}
    clean = await event(memo, 1, team="web")
    assert not clean


def test_no_handler_makes_kopf_keep_a_diff_base() -> None:
    """kopf stores its diff base (the whole spec) for change-detecting handlers only: on.create,
    on.update, on.resume, on.delete, on.field. Keep the rollout free of them (see handlers.py)."""
    registry = kopf.get_default_registry()
    changing = registry._changing.get_all_handlers()  # kopf has no public accessor
    ours = [h.id for h in changing if h.selector is None or h.selector.plural in (None, kube.PLURAL)]
    assert not ours
    watching = {h.id for h in registry._watching.get_all_handlers()}
    assert WAKEUP_HANDLER_ID in watching


def test_the_per_event_success_line_is_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("kopf.objects")  # kopf's per-object logger
    with caplog.at_level(logging.INFO, logger="kopf.objects"):
        log.info(f"Handler {WAKEUP_HANDLER_ID!r} succeeded.")
        log.info("Handler 'drive' succeeded.")
        log.error(f"Handler {WAKEUP_HANDLER_ID!r} failed with an exception and will stop now: boom")
    assert caplog.messages == [
        "Handler 'drive' succeeded.",
        f"Handler {WAKEUP_HANDLER_ID!r} failed with an exception and will stop now: boom",
    ]


class NeverStopped:
    """kopf.DaemonStopped as seen by a daemon that nobody stops."""

    def __bool__(self) -> bool:
        return False

    async def wait(self) -> None:
        await asyncio.Event().wait()


async def test_the_daemon_sleeping_an_hour_reconciles_the_new_spec_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The real daemon (`drive`), kopf's way of refreshing its body, and the wakeup, together: a
    reconcile that asks for an hour's sleep; a status-only event leaves it asleep; a spec edit does not."""
    seen: list[int] = []
    cycled = asyncio.Event()

    async def reconcile(rollout: Rollout, deps: Any) -> Cycle:
        seen.append(rollout.generation)
        cycled.set()
        return Cycle(requeue_after=3600.0, status=RolloutStatus(), patches=0)

    monkeypatch.setattr(handlers, "reconcile", reconcile)
    memo = operator_memo()
    raw: dict[str, Any] = {"metadata": meta(1), "spec": {"instances": [{"id": "srv-0001"}]}, "status": {}}
    body = kopf.Body(cast(Any, raw))

    async def watch_event(generation: int) -> None:
        new = {**raw, "metadata": meta(generation)}
        body._replace_with(new)  # what kopf does to a daemon's body before it calls any handler
        await event(memo, generation)

    await event(memo, 1, type_=None)
    daemon: asyncio.Task[None] = asyncio.create_task(
        DRIVE(
            body=body,
            uid=UID,
            namespace="default",
            name="web",
            memo=memo,
            stopped=cast(kopf.DaemonStopped, NeverStopped()),
            logger=logging.getLogger("test"),
            rollout_claims={},
        )
    )
    try:
        await asyncio.wait_for(cycled.wait(), 5)
        assert seen == [1]
        cycled.clear()
        await watch_event(1)  # the daemon's own status write coming back
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.shield(cycled.wait()), 0.3)
        await watch_event(2)  # a spec edit
        await asyncio.wait_for(cycled.wait(), 5)
        assert seen == [1, 2]
    finally:
        daemon.cancel()
        with pytest.raises(asyncio.CancelledError):
            await daemon
    assert UID not in state(memo).wakeups  # the daemon removed its wakeup on the way out
