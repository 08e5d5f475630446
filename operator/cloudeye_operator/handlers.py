"""kopf handlers: translate between Kubernetes and the reconciler. No rollout policy lives here.

- A daemon per AgentRollout runs reconcile cycles while the rollout has something to do, sleeping
  `requeue_after` between them (the planner's poll interval or retry backoff). A spec edit wakes it:
  a watch-event handler sees metadata.generation move (the API server bumps it on every spec change,
  never on a status write).
- No handler here detects changes (no on.create/update/resume/delete, no field=): for those kopf keeps
  a copy of the whole spec, its diff base, in an annotation, and a 10,000-server spec (~500 KiB) does
  not fit the 256 KiB the API server allows all annotations together: every such patch was refused
  (422 "metadata.annotations: Too long") and kopf throttled the rollout. Now kopf stores nothing on the
  object but its finalizer; the copy an earlier version left on a smaller rollout is removed.
- The daemon's filter stops it once the rollout is settled (observed, nothing in flight, finished):
  a finished rollout costs nothing. kopf spawns it again when the spec changes.
- An index of which rollout claims which server lets a later rollout wait for an earlier one on the
  servers they share (the rule is rollout/claims.py's), instead of racing it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import kopf

from cloudeye_operator import kube
from cloudeye_operator.config import OperatorSettings
from cloudeye_operator.logging_setup import QuietSuccessFilter
from cloudeye_operator.reconciler import Deps, Rollout, reconcile
from cloudeye_operator.rollout.claims import Claim, claimed_elsewhere, claims_of, with_queued
from cloudeye_operator.rollout.drift import followed_for_drift, repair_excluded
from cloudeye_operator.rollout.selection import followed_for_selection
from cloudeye_operator.rollout.status import RolloutStatus, settled
from cloudeye_operator.sessions import ClientPool

log = logging.getLogger(__name__)

RESOURCE: Final = (kube.GROUP, kube.VERSION, kube.PLURAL)
IDLE_WAIT_SECONDS: Final = 3600.0
"""With nothing scheduled, a daemon still wakes hourly: a cheap re-check, in case a wakeup was lost."""
KOPF_PREFIX: Final = "cloudeye.dev"
STALE_DIFF_BASE: Final = f"{KOPF_PREFIX}/last-handled-configuration"
"""Where kopf kept its diff base while an on.update handler woke the daemon (before this version)."""
WAKEUP_HANDLER_ID: Final = "wake_on_spec_change"


@dataclass
class OperatorMemo:
    settings: OperatorSettings
    deps: Deps
    wakeups: dict[str, asyncio.Event] = field(default_factory=dict)
    """uid -> what wakes that rollout's daemon (the daemon adds it, and removes it when it ends)."""
    generations: dict[str, int | None] = field(default_factory=dict)
    """uid -> the metadata.generation of the last watch event seen for it."""


def _memo(memo: Any) -> OperatorMemo:
    state = memo.get("cloudeye")
    assert isinstance(state, OperatorMemo), "the startup handler did not run"
    return state


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
    config = OperatorSettings()
    # Keep kopf's own bookkeeping in annotations, should it ever keep any: the status schema is ours,
    # and typed. With no change-detecting handler it stores neither progress nor a diff base.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=KOPF_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=KOPF_PREFIX)
    settings.posting.enabled = config.post_events
    settings.watching.server_timeout = 300
    pool = ClientPool(config)
    memo["cloudeye"] = OperatorMemo(
        settings=config, deps=Deps(settings=config, pool=pool, read_secret=kube.read_secret_data)
    )


@kopf.on.cleanup()
async def cleanup(memo: Any, **_: Any) -> None:
    await _memo(memo).deps.pool.aclose()


@kopf.index(*RESOURCE)
def rollout_claims(
    namespace: str | None,
    name: str,
    meta: Mapping[str, Any],
    spec: Mapping[str, Any],
    status: Mapping[str, Any],
    **_: Any,
) -> dict[str, Claim]:
    """server id -> this rollout's claim on it (see rollout/claims.py for who goes first)."""
    return claims_of(f"{namespace}/{name}", str(meta.get("creationTimestamp", "")), spec, status)


def needs_driving(body: kopf.Body, **_: Any) -> bool:
    """The daemon runs unless the rollout is settled (rollout.status.settled) with no drift checks to
    make (rollout.drift.followed_for_drift) and no selector to resolve again
    (rollout.selection.followed_for_selection)."""
    status = body.get("status") or {}
    if not settled(status, body.metadata.get("generation")):
        return True
    spec = body.get("spec") or {}
    return followed_for_selection(spec) or followed_for_drift(spec, status)


@kopf.on.event(*RESOURCE, id=WAKEUP_HANDLER_ID)
async def wake_on_spec_change(
    type: str | None,
    uid: str,
    meta: Mapping[str, Any],
    memo: Any,
    patch: kopf.Patch,
    logger: logging.Logger | logging.LoggerAdapter[Any],
    **_: Any,
) -> None:
    """Wake the rollout's daemon when its generation moves, i.e. its spec changed.

    A watch-event handler, so kopf keeps no diff base for it. Async, so it runs on the event loop: an
    asyncio.Event must not be set from kopf's thread pool. kopf refreshes the daemon's `body` before
    it calls any handler, so the woken daemon reads the new spec. The first event seen for a rollout
    wakes nothing: its daemon has just started, or is about to, and reads the spec as it is. A
    settled rollout has no daemon to wake: the new generation unsettles it, and kopf spawns one.
    """
    state = _memo(memo)
    if type == "DELETED":
        state.generations.pop(uid, None)
        return
    generation = meta.get("generation")
    seen = state.generations.get(uid, generation)
    state.generations[uid] = generation
    if generation != seen:
        wakeup = state.wakeups.get(uid)
        logger.info(
            "spec changed: generation %s -> %s%s", seen, generation, ", waking the daemon" if wakeup else ""
        )
        if wakeup is not None:
            wakeup.set()
    if STALE_DIFF_BASE in (meta.get("annotations") or {}):
        # A stale copy of an old spec, which kopf would parse on every event and nobody updates.
        patch.metadata.annotations[STALE_DIFF_BASE] = None


# kopf logs "Handler 'wake_on_spec_change' succeeded." on every watch event of every rollout: drop it
# on kopf's per-object logger.
logging.getLogger("kopf.objects").addFilter(QuietSuccessFilter(WAKEUP_HANDLER_ID))


# cancellation_backoff: once the filter turns False (the cycle's own status write settled the rollout),
# kopf sets `stopped` and waits before cancelling, so the cycle in flight still posts its Events.
@kopf.daemon(*RESOURCE, when=needs_driving, cancellation_backoff=10.0, cancellation_timeout=30.0)
async def drive(
    *,
    body: kopf.Body,
    uid: str,
    namespace: str | None,
    name: str,
    memo: Any,
    stopped: kopf.DaemonStopped,
    logger: logging.Logger | logging.LoggerAdapter[Any],
    **kwargs: Any,
) -> None:
    claims: kopf.Index[str, Claim] = kwargs["rollout_claims"]  # kopf passes indexes by name
    namespace = namespace or "default"
    state = _memo(memo)
    wakeup = state.wakeups.setdefault(uid, asyncio.Event())
    me = f"{namespace}/{name}"
    # The daemon is this rollout's only status writer: what it wrote last is the truth, even before
    # the watch stream brings that write back into `body`.
    written: RolloutStatus | None = None

    async def write_status(patch: dict[str, Any]) -> None:
        await kube.patch_status(namespace, name, patch)

    def post_event(kind: str, reason: str, message: str) -> None:
        kopf.event(body, type=kind, reason=reason, message=message)

    try:
        while not stopped:
            wakeup.clear()
            spec = dict(body.get("spec") or {})
            created = str(body.metadata.get("creationTimestamp", ""))

            def claims_on(ids: Sequence[str], created: str = created) -> dict[str, str]:
                # A selector rollout's servers not started are not in its status: their queued
                # claims are in the operator's memory.
                every = with_queued(claims, state.deps.memory.queued_claims.values())
                return claimed_elsewhere(me, created, ids, every)

            rollout = Rollout(
                namespace=namespace,
                name=name,
                generation=int(body.metadata.get("generation") or 0),
                spec=spec,
                status=written if written is not None else dict(body.get("status") or {}),
                write_status=write_status,
                post_event=post_event,
                claims_on=claims_on,
                repair_excluded=repair_excluded(body.metadata.annotations),
                created=created,
            )
            try:
                cycle = await reconcile(rollout, state.deps)
                written, delay = cycle.status, cycle.requeue_after
            except kube.KubeError as error:
                logger.warning("status not written (%s); retrying", error)
                written = None  # re-read the server's view next time
                delay = 5.0
            await _sleep(wakeup, stopped, delay if delay is not None else IDLE_WAIT_SECONDS)
    finally:
        state.wakeups.pop(uid, None)
        state.deps.forget(namespace, name)


async def _sleep(wakeup: asyncio.Event, stopped: kopf.DaemonStopped, seconds: float) -> None:
    """Sleep until the delay passes, the spec changes, or the daemon is stopped."""
    waits = [asyncio.ensure_future(wakeup.wait()), asyncio.ensure_future(stopped.wait())]
    try:
        await asyncio.wait(waits, timeout=max(seconds, 0.0), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waits:
            waiter.cancel()
