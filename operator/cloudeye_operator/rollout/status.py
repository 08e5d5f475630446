"""Typed model of `AgentRollout.status`: what the operator knows, written so a person can read it.

The per-instance state machine (one closed enum, `InstanceState`), as transitions:

    WAITING      -> CREATING       started: an intent is recorded, the call is about to be made
    WAITING      -> BLOCKED        another rollout has unfinished work on the instance (and back)
    WAITING      -> SKIPPED        action ROLLBACK and no UPDATE in effect to undo
    CREATING     -> PENDING/RUNNING/ROLLING_BACK   the task is known (answer, or adopted by listing)
    CREATING     -> REFUSED        batch-create answered `ret_status: error` for it
    CREATING     -> WAITING / RETRY_WAIT / DRIFTED intent released: nothing was created, it goes again
    PENDING      -> RUNNING -> VERIFYING           the task SUCCEEDED (a rollback: ROLLING_BACK -> VERIFYING)
    VERIFYING    -> SUCCEEDED / ROLLED_BACK        telescope seen running the version the task set
    VERIFYING    -> UNVERIFIED                     not seen within strategy.verifyTimeoutSeconds
    UNVERIFIED   -> RETRY_WAIT / GAVE_UP           as FAILED; the retry is a new task, not a RETRY
    SUCCEEDED    -> DRIFTED                        a drift check found the agent off the declared state
    DRIFTED      -> CREATING                       spec.drift.mode Repair: INSTALL or UPDATE it again
    DRIFTED      -> SUCCEEDED                      a later check found it back (reported only)
    RUNNING      -> FAILED/TIMEOUT                 the task failed
    FAILED/TIMEOUT/REFUSED -> RETRY_WAIT           a retry is allowed: it is scheduled at retryAt
    FAILED/TIMEOUT/REFUSED -> GAVE_UP              retries exhausted, or an outcome not in retry.onStatuses
    RUNNING      -> GAVE_UP        the task was CANCELED by someone: not fought
    RETRY_WAIT   -> CREATING       retryAt passed: RETRY of the failed task, or a new create if refused
    RETRY_WAIT   -> FAILED/TIMEOUT/REFUSED         paused, or over the failure budget: held
    SUCCEEDED    -> WAITING        over budget with rollbackOnFailure: action becomes ROLLBACK
    any          -> WAITING        a new revision resets every instance (attempts 0)

An instance is *in flight* (counts against maxInFlight) while it has an unfinished task, an intent, or a
scheduled retry, or a success still to verify: CREATING, PENDING, RUNNING, ROLLING_BACK, RETRY_WAIT,
VERIFYING. FAILED/TIMEOUT/REFUSED/UNVERIFIED mean "the last attempt failed and a retry is allowed, but
none is scheduled" (the rollout is paused or its failure budget is spent); they hold no slot. Terminal:
SUCCEEDED, GAVE_UP, ROLLED_BACK, SKIPPED. DRIFTED is work not started (a repair to make). Every state is
in exactly one of: not started, in flight, held failure, terminal.

What a state means is one row of `STATE_TRAITS`; every set of states the operator uses is derived from
it (`tests/unit/rollout/test_state_traits.py` checks this list against the table):

    IN_FLIGHT         CREATING PENDING RUNNING RETRY_WAIT ROLLING_BACK VERIFYING
    LIVE              CREATING PENDING RUNNING ROLLING_BACK VERIFYING
    TASK_STATES       PENDING RUNNING ROLLING_BACK
    NOT_STARTED       WAITING BLOCKED DRIFTED
    HELD_FAILURES     FAILED TIMEOUT REFUSED UNVERIFIED
    TERMINAL          SUCCEEDED GAVE_UP ROLLED_BACK SKIPPED
    PLAIN_STATES      CREATING PENDING RUNNING SUCCEEDED ROLLING_BACK
    EXPLAINED_STATES  FAILED TIMEOUT REFUSED RETRY_WAIT GAVE_UP ROLLED_BACK SKIPPED VERIFYING UNVERIFIED
    claim live        CREATING PENDING RUNNING ROLLING_BACK VERIFYING
    claim queued      WAITING FAILED TIMEOUT REFUSED RETRY_WAIT UNVERIFIED DRIFTED
    claim none        BLOCKED SUCCEEDED GAVE_UP ROLLED_BACK SKIPPED
    trouble           BLOCKED FAILED TIMEOUT REFUSED RETRY_WAIT GAVE_UP UNVERIFIED DRIFTED
    summary.succeeded SUCCEEDED
    summary.failed    FAILED TIMEOUT REFUSED GAVE_UP UNVERIFIED
    summary.rolledBack ROLLED_BACK
    summary.inFlight  CREATING PENDING RUNNING RETRY_WAIT ROLLING_BACK VERIFYING
    summary.pending   WAITING BLOCKED
    summary.skipped   SKIPPED
    summary.drifted   DRIFTED

LIVE: a task or an intent exists (work the operator must keep watching). TASK_STATES: the tracked task
(`invocationId`) is unfinished and is polled. PLAIN_STATES: the message only repeats the task's state,
so it is left out of the wire form. EXPLAINED_STATES: versions and transition time are kept on the wire.
Claims (`claims.py`): a live claim blocks every other rollout, a queued one younger rollouts only.
Trouble: the states `cloudeye-operator status` lists server by server.

Adding a state: its row in `STATE_TRAITS`, the planner's rule for it, and the README's list of states.

Records are slotted frozen dataclasses (`InstanceStatus`, `Summary`: thousands per rollout, changed
with `dataclasses.replace`); pydantic loads and dumps them at the edge (`RolloutStatus`).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, with_config
from pydantic.alias_generators import to_camel

from cloudeye_operator.cloudeye.models import InvocationType
from cloudeye_operator.rollout.conditions import Condition


class InstanceState(StrEnum):
    """A server's state in one rollout; what each one means is its row in `STATE_TRAITS`."""

    WAITING = "WAITING"
    BLOCKED = "BLOCKED"
    CREATING = "CREATING"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMEOUT = "TIMEOUT"
    REFUSED = "REFUSED"
    RETRY_WAIT = "RETRY_WAIT"
    GAVE_UP = "GAVE_UP"
    ROLLING_BACK = "ROLLING_BACK"
    ROLLED_BACK = "ROLLED_BACK"
    SKIPPED = "SKIPPED"
    VERIFYING = "VERIFYING"
    UNVERIFIED = "UNVERIFIED"
    DRIFTED = "DRIFTED"


class ClaimKind(StrEnum):
    """What a rollout's state on a server claims for it against other rollouts (`claims.py`)."""

    LIVE = "live"
    """A task or an intent: blocks every other rollout."""
    QUEUED = "queued"
    """Not finished there: blocks younger rollouts, while the rollout is Pending or Progressing."""
    NONE = "none"
    """Finished there, or blocked itself: claims nothing."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StateTraits:
    """Everything the operator derives from a per-server state (one row of `STATE_TRAITS`)."""

    meaning: str
    """One line for people (docs, reviews)."""
    summary_field: str
    """The `Summary` count the state adds to."""
    claim: ClaimKind
    """What the state claims against other rollouts (`claims.py`)."""
    style: str
    """Its colour in `cloudeye-operator status` (a rich style)."""
    not_started: bool = False
    """No work started in this revision (NOT_STARTED)."""
    in_flight: bool = False
    """Holds a maxInFlight slot: an unfinished task, an intent, or a scheduled retry (IN_FLIGHT)."""
    live: bool = False
    """A task or an intent exists: work the operator must keep watching (LIVE)."""
    polled: bool = False
    """The tracked task (`invocationId`) is unfinished and must be polled (TASK_STATES)."""
    held_failure: bool = False
    """The last attempt failed, a retry is allowed but none is scheduled (HELD_FAILURES)."""
    terminal: bool = False
    """Done in this revision (TERMINAL)."""
    plain_message: bool = False
    """The message only repeats the task's state: left out of the wire form (PLAIN_STATES)."""
    explained: bool = False
    """Versions and transition time are kept on the wire, to explain it (EXPLAINED_STATES)."""
    trouble: bool = False
    """Listed server by server in `cloudeye-operator status`."""


_S = InstanceState
STATE_TRAITS: Final[Mapping[InstanceState, StateTraits]] = {
    _S.WAITING: StateTraits(
        meaning="Not started yet (with action ROLLBACK: a rollback not started yet).",
        summary_field="pending",
        claim=ClaimKind.QUEUED,
        style="dim",
        not_started=True,
    ),
    _S.BLOCKED: StateTraits(
        meaning="Not started: another rollout has unfinished work on this server.",
        summary_field="pending",
        claim=ClaimKind.NONE,
        style="yellow",
        not_started=True,
        trouble=True,
    ),
    _S.CREATING: StateTraits(
        meaning="An intent is recorded (a create, retry or rollback call is being made); no task known yet.",
        summary_field="in_flight",
        claim=ClaimKind.LIVE,
        style="cyan",
        in_flight=True,
        live=True,
        plain_message=True,
    ),
    _S.PENDING: StateTraits(
        meaning="Its task is known and has not started running.",
        summary_field="in_flight",
        claim=ClaimKind.LIVE,
        style="cyan",
        in_flight=True,
        live=True,
        polled=True,
        plain_message=True,
    ),
    _S.RUNNING: StateTraits(
        meaning="Its task is running.",
        summary_field="in_flight",
        claim=ClaimKind.LIVE,
        style="cyan",
        in_flight=True,
        live=True,
        polled=True,
        plain_message=True,
    ),
    _S.SUCCEEDED: StateTraits(
        meaning="Its task succeeded.",
        summary_field="succeeded",
        claim=ClaimKind.NONE,
        style="green",
        terminal=True,
        plain_message=True,
    ),
    _S.FAILED: StateTraits(
        meaning="The task failed; a retry is allowed, none scheduled (paused, or the failure budget spent).",
        summary_field="failed",
        claim=ClaimKind.QUEUED,
        style="red",
        held_failure=True,
        explained=True,
        trouble=True,
    ),
    _S.TIMEOUT: StateTraits(
        meaning="As FAILED, for a task that timed out.",
        summary_field="failed",
        claim=ClaimKind.QUEUED,
        style="red",
        held_failure=True,
        explained=True,
        trouble=True,
    ),
    _S.REFUSED: StateTraits(
        meaning="batch-create answered `ret_status: error` for this server; counts as an attempt.",
        summary_field="failed",
        claim=ClaimKind.QUEUED,
        style="red",
        held_failure=True,
        explained=True,
        trouble=True,
    ),
    _S.RETRY_WAIT: StateTraits(
        meaning="A retry is scheduled at `retryAt` (backoff).",
        summary_field="in_flight",
        claim=ClaimKind.QUEUED,
        style="yellow",
        in_flight=True,
        explained=True,
        trouble=True,
    ),
    _S.GAVE_UP: StateTraits(
        meaning="Terminal failure: retries spent, an outcome not in retry.onStatuses, or a task CANCELED.",
        summary_field="failed",
        claim=ClaimKind.NONE,
        style="bold red",
        terminal=True,
        explained=True,
        trouble=True,
    ),
    _S.ROLLING_BACK: StateTraits(
        meaning="Its rollback task is known and unfinished.",
        summary_field="in_flight",
        claim=ClaimKind.LIVE,
        style="magenta",
        in_flight=True,
        live=True,
        polled=True,
        plain_message=True,
    ),
    _S.ROLLED_BACK: StateTraits(
        meaning="Rolled back: by its rollback task, or by someone else.",
        summary_field="rolled_back",
        claim=ClaimKind.NONE,
        style="magenta",
        terminal=True,
        explained=True,
    ),
    _S.SKIPPED: StateTraits(
        meaning="Action ROLLBACK found nothing to roll back (no SUCCEEDED UPDATE task, or it is undone).",
        summary_field="skipped",
        claim=ClaimKind.NONE,
        style="dim",
        terminal=True,
        explained=True,
    ),
    _S.VERIFYING: StateTraits(
        meaning="Its task SUCCEEDED; waiting to see telescope running the target version "
        "(strategy.verifyTimeoutSeconds).",
        summary_field="in_flight",
        claim=ClaimKind.LIVE,
        style="cyan",
        in_flight=True,
        live=True,
        explained=True,
    ),
    _S.UNVERIFIED: StateTraits(
        meaning="Its task SUCCEEDED but telescope was not seen running the target version in time; "
        "retried as a new task (the message holds what was seen).",
        summary_field="failed",
        claim=ClaimKind.QUEUED,
        style="red",
        held_failure=True,
        explained=True,
        trouble=True,
    ),
    _S.DRIFTED: StateTraits(
        meaning="Was converged; a drift check found its agent off the declared state (the message says "
        "how). Repaired with a new task (spec.drift.mode Repair), or only reported.",
        summary_field="drifted",
        claim=ClaimKind.QUEUED,
        style="bold yellow",
        not_started=True,
        trouble=True,
    ),
}
del _S


def states_where(trait: Callable[[StateTraits], bool]) -> frozenset[InstanceState]:
    """The states whose row has `trait` (the sets below; tests and other modules may ask for more)."""
    return frozenset(state for state, traits in STATE_TRAITS.items() if trait(traits))


IN_FLIGHT: Final = states_where(lambda t: t.in_flight)
"""Counts against maxInFlight: an unfinished task, an intent, or a scheduled retry."""
LIVE: Final = states_where(lambda t: t.live)
"""A task or an intent exists: work the operator must keep watching."""
TASK_STATES: Final = states_where(lambda t: t.polled)
"""States whose tracked task (`invocationId`) is unfinished and must be polled."""
NOT_STARTED: Final = states_where(lambda t: t.not_started)
HELD_FAILURES: Final = states_where(lambda t: t.held_failure)
TERMINAL: Final = states_where(lambda t: t.terminal)
SUMMARY_FIELD: Final[Mapping[InstanceState, str]] = {
    state: traits.summary_field for state, traits in STATE_TRAITS.items()
}
PLAIN_STATES: Final = states_where(lambda t: t.plain_message)
"""States whose message only repeats the task's state ("task X RUNNING"): left out of the wire form."""
EXPLAINED_STATES: Final = states_where(lambda t: t.explained)
"""States that keep versions and transition time on the wire: what a person needs to explain them (and
the retry backoff counts from the transition time)."""


class Failure(StrEnum):
    """How the last attempt failed, kept while a retry is pending (it picks the retry call)."""

    FAILED = "FAILED"
    TIMEOUT = "TIMEOUT"
    REFUSED = "REFUSED"
    UNVERIFIED = "UNVERIFIED"

    @property
    def new_task(self) -> bool:
        """Retried by a new create, not by RETRY of the failed task (there is no failed task to re-run:
        refused, or a task that SUCCEEDED whose agent did not come up)."""
        return self in (Failure.REFUSED, Failure.UNVERIFIED)

    @property
    def state(self) -> InstanceState:
        return InstanceState(self.value)


class Phase(StrEnum):
    """For humans and printer columns; the conditions are the contract."""

    PENDING = "Pending"
    PROGRESSING = "Progressing"
    PAUSED = "Paused"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    STALLED = "Stalled"


# Tolerant: a status written by an older operator (or one with fields we do not know) still loads.
_STATUS_CONFIG: Final = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class _StatusModel(BaseModel):
    model_config = ConfigDict(frozen=True, **_STATUS_CONFIG)


@with_config(_STATUS_CONFIG)
@dataclass(frozen=True, slots=True)
class InstanceStatus:
    """One server's record: thousands per rollout, so a slotted frozen dataclass, changed with
    `dataclasses.replace` (pydantic loads and dumps it inside `RolloutStatus`)."""

    state: InstanceState = InstanceState.WAITING
    action: InvocationType | None = None
    """The work this instance is getting: INSTALL, UPDATE or ROLLBACK (a RETRY continues it)."""
    invocation_id: str | None = None
    """The latest task known for this instance (kept across a new revision to rule it out for adoption)."""
    attempts: int = 0
    """Task runs (and refused requests) for the current action in this revision."""
    message: str | None = None
    current_version: str | None = None
    target_version: str | None = None
    last_transition_time: datetime | None = None
    retry_at: datetime | None = None
    """When the pending retry may be sent (set while a retry is allowed)."""
    failure: Failure | None = None
    """How the last attempt failed, while a retry is pending."""
    rollback_of: str | None = None
    """For a rollback: the SUCCEEDED UPDATE task it undoes."""
    drift: str | None = None
    """What the last drift check found off the declared state; kept while the server is repaired, and
    cleared once it is seen back (the rollout is not Ready while any server has one)."""


class Intent(_StatusModel):
    """A create/retry/rollback call recorded before it is made (guarantee 1: no duplicate work)."""

    action: InvocationType
    instance_ids: tuple[str, ...]
    invocation_ids: tuple[str, ...] = ()
    """RETRY/ROLLBACK: the task acted on, index-aligned with instance_ids."""
    created_at: datetime
    confirmed: tuple[str, ...] = ()
    """Instances the cloud confirmed without a task id: they are adopted by listing, never re-created."""
    preexisting: tuple[str, ...] = ()
    """Tasks already listed when the intent was made that could pass for its own: never adopted. The
    instances' whole histories were listed then, so this is every such task (see planner._covered)."""
    version: str | None = None
    """INSTALL/UPDATE: the exact version asked for, if any; a task aimed elsewhere is not this one's."""


@with_config(_STATUS_CONFIG)
@dataclass(frozen=True, slots=True)
class Summary:
    """Counts by state (`StateTraits.summary_field`); they add up to `total`."""

    total: int = 0
    succeeded: int = 0
    """SUCCEEDED."""
    failed: int = 0
    """GAVE_UP, plus FAILED/TIMEOUT/REFUSED/UNVERIFIED (failed and no retry scheduled)."""
    rolled_back: int = 0
    in_flight: int = 0
    """CREATING, PENDING, RUNNING, ROLLING_BACK, RETRY_WAIT, VERIFYING."""
    pending: int = 0
    """WAITING, BLOCKED."""
    skipped: int = 0
    drifted: int = 0
    """DRIFTED: converged once, found off the declared state by a drift check."""


SUMMARY_FIELDS: Final = tuple(f.name for f in dataclasses.fields(Summary))
"""The names of Summary's fields, `total` first."""


def summarize(instances: Iterable[InstanceStatus]) -> Summary:
    by_state = Counter(record.state for record in instances)
    counts: Counter[str] = Counter()
    for state, count in by_state.items():
        counts[SUMMARY_FIELD[state]] += count
    return Summary(total=sum(by_state.values()), **counts)


class ApiErrorRecord(_StatusModel):
    """The last create/retry/rollback call that failed as a whole; new calls wait a while after it."""

    http_status: int | None = None
    """None: the cloud was never reached, or the request was refused locally."""
    error_code: str | None = None
    message: str = ""
    time: datetime
    generation: int = 0
    credentials: str | None = None
    """A tag of the credentials the call was made with (`credentials.tag`: reveals nothing of them).
    The hold after a refused call is for those credentials: rotated ones are used at once."""
    count: int = 1
    """Calls refused in a row with these credentials for this generation: the wait after the last one
    doubles with each (causes.retry_after)."""


class SelectionStatus(_StatusModel):
    """What a spec.selector resolved to (selector rollouts only)."""

    matched: int = 0
    """Servers the selector matched when last resolved."""
    resolved_at: datetime | None = None
    joined: int | None = None
    """Servers that came to match since the revision started (None: 0)."""
    left: int | None = None
    """Servers that stopped matching since the revision started (None: 0); their agents are left as
    they are."""
    leaving: int | None = None
    """Servers that no longer match but still have a task or an intent: followed until it ends."""


class RolloutStatus(_StatusModel):
    observed_generation: int = 0
    phase: Phase = Phase.PENDING
    revision: int = 0
    """Starts at 1; +1 whenever revisionKey changes (and the previous revision's tasks have ended)."""
    revision_key: str = ""
    """action|version|versionType: what identifies "the same rollout"."""
    summary: Summary = Summary()
    instances: dict[str, InstanceStatus] = Field(default_factory=dict)
    conditions: tuple[Condition, ...] = ()
    intents: dict[str, Intent] = Field(default_factory=dict)
    started_at: datetime | None = None
    """When the current revision started."""
    last_progress_at: datetime | None = None
    """When an instance last changed state (the progress deadline counts from here)."""
    api_error: ApiErrorRecord | None = None
    deadline_exceeded_generation: int | None = None
    """The generation whose progress deadline fired: it starts no new task until the spec changes."""
    resolved_version: str | None = None
    """The version this revision's tasks were seen to set, for a versionType or latest target (a
    drift check holds servers to it)."""
    drift_checked_at: datetime | None = None
    """When a drift check last looked at the converged servers' agents."""
    drift_found: int | None = None
    """Servers a drift check found off the declared state, since the revision started (None: 0)."""
    drift_repaired: int | None = None
    """Of those, the ones a repair brought back (None: 0)."""
    wave_ended_at: datetime | None = None
    """When the last wave of this revision ended (nothing left in flight): strategy.soakSeconds counts
    from here."""
    next_window_at: datetime | None = None
    """While outside every strategy.windows entry with work ahead: when the next window opens."""
    selection: SelectionStatus | None = None
    """Selector rollouts: what the selector resolved to. Their `instances` map lists only the servers
    with something to say (`listed`); the others are counted in `summary`."""
    consecutive_errors: int | None = None
    """Cycles in a row that ended on a cause found before planning (a missing Secret, an unlistable
    cloud): the wait before the next cycle doubles with each (causes.retry_after). None (left out of
    the status) once a cycle plans."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> RolloutStatus:
        """Load a status as Kubernetes holds it; empty, None and older shapes load with defaults.

        Entries are in the compact wire form (`instance_wire`): an entry without `action` gets the
        revision's action back."""
        status = cls.model_validate(dict(data or {}))
        default = revision_action(status.revision_key)
        # Equal records become one shared (immutable) record: thousands of `{"state": "WAITING"}` load
        # as one, so the planner moves them as one (Book.set_shared) rather than copying each. The
        # keys are the records as parsed and as loaded (action put back), each mapping to the one kept.
        shared: dict[InstanceStatus, InstanceStatus] = {}
        instances = {}
        for iid, rec in status.instances.items():
            loaded = shared.get(rec)
            if loaded is None:
                full = (
                    rec
                    if rec.action is not None or default is None
                    else dataclasses.replace(rec, action=default)
                )
                loaded = shared[rec] = shared.setdefault(full, full)
            instances[iid] = loaded
        return status.model_copy(update={"instances": instances})

    def to_dict(self) -> dict[str, Any]:
        """The status as JSON data (camelCase, RFC3339 times, no nulls: absence is the merge-patch null).

        Instance entries are in the compact wire form (`instance_wire`)."""
        data = self.head_dict()
        default = revision_action(self.revision_key)
        lists = self.lister()
        data["instances"] = {
            iid: instance_wire(rec, default) for iid, rec in self.instances.items() if lists(rec)
        }
        return data

    def lister(self) -> Callable[[InstanceStatus], bool]:
        """Which records the wire form lists (see `listed`): every one, unless a selector rollout."""
        if self.selection is None:
            return _every
        action = revision_action(self.revision_key)
        converged_known = self.declared_version() is not None
        return lambda record: listed(record, action, converged_known=converged_known)

    def listing_key(self) -> tuple[bool, bool]:
        """What `lister` depends on besides the revision's action: equal keys, equal listers."""
        return (self.selection is None, self.declared_version() is None)

    def declared_version(self) -> str | None:
        """The version this revision holds servers to: the spec's exact one (in revisionKey), else the
        one its tasks were seen to set; None: not known yet."""
        version = self.revision_key.split("|")[1] if self.revision_key.count("|") >= 1 else ""
        return version or self.resolved_version

    def head_dict(self) -> dict[str, Any]:
        """`to_dict()` with an empty instances map: everything but the per-server entries."""
        head = self.model_copy(update={"instances": {}})
        data = head.model_dump(mode="json", by_alias=True, exclude_none=True)
        # Keep the maps even when empty, so a diff shows entries leaving rather than the map vanishing.
        data.setdefault("intents", {})
        return data

    @property
    def intent_instance_ids(self) -> set[str]:
        return {iid for intent in self.intents.values() for iid in intent.instance_ids}


def make_revision_key(action: str, version: str | None, version_type: str | None) -> str:
    """What identifies "the same rollout" (status.revisionKey): `action|version|versionType`."""
    return f"{action}|{version or ''}|{version_type or ''}"


def revision_action(revision_key: str) -> InvocationType | None:
    """The action of a revision key (`make_revision_key`); None before the first revision."""
    action = revision_key.split("|", 1)[0]
    return InvocationType(action) if action else None


def _every(record: InstanceStatus) -> bool:
    return True


def listed(record: InstanceStatus, default_action: InvocationType | None, *, converged_known: bool) -> bool:
    """Whether a selector rollout's status lists this server by id (an id-list rollout lists all).

    100,000 servers do not fit one object (etcd takes 1.5 MiB per request; an entry is ~60 bytes), so
    two kinds are only counted in `summary`: a server not started (WAITING with nothing to explain:
    no attempt, no message, the revision's action) and a converged one (SUCCEEDED, nothing drifted,
    once the version it is held to is known). Every other server is listed with why. After a restart
    the operator tells the two apart by looking at their agents (drift.precheck_ids): one already
    running the declared version is SUCCEEDED again, any other is started. An unlisted WAITING server
    keeps no task id, so adoption rests on the intent's time floor and preexisting list (guarantee 1).
    """
    state = record.state
    if state is InstanceState.WAITING:
        return record.attempts > 0 or record.message is not None or record.action is not default_action
    if state is InstanceState.SUCCEEDED:
        return record.drift is not None or not converged_known
    return True


def unlisted_counts(summary: Mapping[str, Any], listed: Mapping[str, int]) -> dict[str, int]:
    """From a status as Kubernetes holds it: the servers a selector rollout counts but does not list
    (`listed`), by state (SUCCEEDED converged, WAITING not started): the summary less the entries.
    `listed` counts the entries by state."""
    succeeded = int(summary.get("succeeded") or 0) - listed.get("SUCCEEDED", 0)
    waiting = int(summary.get("pending") or 0) - listed.get("WAITING", 0) - listed.get("BLOCKED", 0)
    return {state: n for state, n in (("SUCCEEDED", succeeded), ("WAITING", waiting)) if n > 0}


def instance_wire(record: InstanceStatus, default_action: InvocationType | None) -> dict[str, Any]:
    """One instance's status entry as written to Kubernetes: only what is not implied.

    A 10,000-server rollout must fit one Kubernetes object (etcd takes at most 1.5 MiB per request),
    and the full record is ~300 bytes with UUIDs. So the entry leaves out:
    - `action` when it is the revision's (from revisionKey; `from_dict` puts it back);
    - for SUCCEEDED: the task id (a rollback on failure finds the UPDATE task by listing) and
      attempts 0 or 1;
    - the message of the PLAIN_STATES, which repeats the task's state;
    - versions and transition time, except for the EXPLAINED_STATES.
    Everything a failure, a retry, a block or a skip needs to explain itself is kept. A SUCCEEDED or
    WAITING entry is `{"state": ...}`: ~60 bytes with a UUID key.
    """
    state = record.state
    out: dict[str, Any] = {"state": state.value}
    if record.action is not None and record.action is not default_action:
        out["action"] = record.action.value
    succeeded = state is InstanceState.SUCCEEDED
    if record.invocation_id is not None and not succeeded:
        out["invocationId"] = record.invocation_id
    if record.attempts > (1 if succeeded else 0):
        out["attempts"] = record.attempts
    if record.message is not None and state not in PLAIN_STATES:
        out["message"] = record.message
    if state in EXPLAINED_STATES:
        if record.current_version is not None:
            out["currentVersion"] = record.current_version
        if record.target_version is not None:
            out["targetVersion"] = record.target_version
        if record.last_transition_time is not None:
            out["lastTransitionTime"] = _rfc3339(record.last_transition_time)
    if record.retry_at is not None:
        out["retryAt"] = _rfc3339(record.retry_at)
    if record.failure is not None:
        out["failure"] = record.failure.value
    if record.rollback_of is not None:
        out["rollbackOf"] = record.rollback_of
    if record.drift is not None:
        out["drift"] = record.drift
    return out


def _rfc3339(moment: datetime) -> str:
    # pydantic's JSON form of an aware datetime, so wire entries and the rest of the status agree.
    return _DATETIME.dump_python(moment, mode="json")  # type: ignore[no-any-return]


_DATETIME: Final = TypeAdapter(datetime)


SETTLED_PHASES: Final = frozenset({Phase.SUCCEEDED, Phase.FAILED})


def settled(status: Mapping[str, Any], generation: int | None) -> bool:
    """A rollout with nothing left to do until its spec changes: this generation observed, no intent
    pending, and finished (Succeeded, or Failed with nothing in flight). The operator stops following
    a settled rollout, so it costs nothing."""
    return (
        status.get("observedGeneration") == generation
        and not status.get("intents")
        and status.get("phase") in SETTLED_PHASES
    )
