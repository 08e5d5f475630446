"""Prometheus metrics on `/metrics` (prometheus-client), with bounded label sets.

| metric | type | labels |
| --- | --- | --- |
| `cloudeye_requests_total` | counter | `endpoint` (batch_create, list, agent_status), `code` (HTTP status) |
| `cloudeye_request_seconds` | histogram | `endpoint` |
| `cloudeye_tasks_total` | counter | `kind` (created, retried, rolled_back): tasks the cloud accepted |
| `agentrollout_instances` | gauge | `namespace`, `name`, `state` (every per-instance state, 0 included) |
| `agentrollout_condition` | gauge (1) | `namespace`, `name`, `type`, `status`, `reason` (see below) |
| `agentrollout_reconcile_seconds` | histogram | none |
| `agentrollout_reconcile_errors_total` | counter | `reason` (Stalled reason, CloudEyeUnavailable, error) |
| `agentrollout_agent_findings_total` | counter | `kind` (unverified, drift_found, repaired, drift_cleared) |

No label carries an instance id, a task id or anything from a Secret: the series count grows with the
number of rollouts (times 15 states, plus 3 conditions), never with the fleet. `agentrollout_condition`
has one series for each of a rollout's conditions (type Ready, Reconciling or Stalled), labelled with
its status (True, False, Unknown) and reason (a `Reason`, else Other), value 1; a condition whose
status or reason changes replaces its series. A deleted rollout's series are removed (a kopf
watch-event handler, which adds no finalizer; see `register_kopf_handlers`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter as Tally
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Any, Final

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from cloudeye_operator.cloudeye.client import Endpoint
from cloudeye_operator.rollout import ActionOutcome, InstanceState, Reason, RolloutStatus, TaskAction, Verb
from cloudeye_operator.rollout.conditions import READY, RECONCILING, STALLED, ConditionStatus
from cloudeye_operator.rollout.report import Drift
from cloudeye_operator.rollout.status import unlisted_counts

log = logging.getLogger(__name__)

DEFAULT_PORT: Final = 8080
METRICS_HANDLER_ID: Final = "metrics"
"""Its per-event "succeeded" line is dropped from the logs (logging_setup): one a status patch is noise."""
STATES: Final = tuple(state.value for state in InstanceState)
TASK_KINDS: Final[Mapping[Verb, str]] = {
    Verb.CREATE: "created",
    Verb.RETRY: "retried",
    Verb.ROLLBACK: "rolled_back",
}

REQUESTS = Counter(
    "cloudeye_requests",
    "Cloud Eye API requests answered, by endpoint and HTTP status code",
    ["endpoint", "code"],
)
REQUEST_SECONDS = Histogram(
    "cloudeye_request_seconds",
    "Latency of Cloud Eye API requests",
    ["endpoint"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
TASKS = Counter(
    "cloudeye_tasks", "Agent tasks the cloud accepted, by kind (created, retried, rolled_back)", ["kind"]
)
INSTANCES = Gauge(
    "agentrollout_instances", "Instances of a rollout by per-instance state", ["namespace", "name", "state"]
)
CONDITIONS = Gauge(
    "agentrollout_condition",
    "A rollout's status conditions: 1 for each condition's current type, status and reason",
    ["namespace", "name", "type", "status", "reason"],
)
CONDITION_TYPES: Final = (READY, RECONCILING, STALLED)
_REASONS: Final = frozenset(reason.value for reason in Reason)
_STATUSES: Final = frozenset(status.value for status in ConditionStatus)
OTHER_REASON: Final = "Other"
_condition_series: dict[tuple[str, str], dict[str, tuple[str, str]]] = {}
"""(namespace, name) -> condition type -> the (status, reason) its series carries now."""
_condition_lock = threading.Lock()
"""kopf runs the sync event handler in a thread, the reconciler in the event loop."""
RECONCILE_SECONDS = Histogram(
    "agentrollout_reconcile_seconds",
    "Duration of one reconcile cycle of one rollout",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0),
)
RECONCILE_ERRORS = Counter(
    "agentrollout_reconcile_errors",
    "Reconcile cycles that stalled, could not observe the cloud, or raised",
    ["reason"],
)

AGENT_FINDINGS = Counter(
    "agentrollout_agent_findings",
    "Servers whose agents were found: unverified after a task, drifted, repaired, or back by themselves",
    ["kind"],
)
FINDING_KINDS: Final = ("unverified", "drift_found", "repaired", "drift_cleared")

for _endpoint in Endpoint:  # the request series exist from the start, so rate() has a baseline
    REQUEST_SECONDS.labels(_endpoint.value)
for _kind in TASK_KINDS.values():
    TASKS.labels(_kind)
for _kind in FINDING_KINDS:
    AGENT_FINDINGS.labels(_kind)


def on_response(endpoint: Endpoint, status: int, seconds: float) -> None:
    """The Cloud Eye client's `on_response` hook: one answered request."""
    REQUESTS.labels(endpoint.value, str(status)).inc()
    REQUEST_SECONDS.labels(endpoint.value).observe(seconds)


def record_tasks(action: TaskAction, outcome: ActionOutcome) -> None:
    """Count the items of a batch-create the cloud accepted (`ret_status: successful`)."""
    accepted = sum(1 for result in outcome.results if result.ok)
    if accepted:
        TASKS.labels(TASK_KINDS[action.verb]).inc(accepted)


def record_drift(drift: Drift) -> None:
    """Count what a plan found of the agents (servers, not checks)."""
    for kind, servers in zip(
        FINDING_KINDS, (drift.unverified, drift.found, drift.repaired, drift.back), strict=True
    ):
        if servers:
            AGENT_FINDINGS.labels(kind).inc(len(servers))


def record_reconcile_error(reason: str) -> None:
    RECONCILE_ERRORS.labels(reason).inc()


@contextmanager
def reconcile_timer() -> Iterator[None]:
    """Time a cycle; an exception escaping it counts as an error named by its class."""
    start = time.perf_counter()
    try:
        yield
    except Exception as error:
        record_reconcile_error(type(error).__name__)
        raise
    finally:
        RECONCILE_SECONDS.observe(time.perf_counter() - start)


def set_rollout_instances(namespace: str, name: str, status: Mapping[str, Any] | None) -> None:
    """Set the per-state and condition gauges of one rollout from its status as Kubernetes holds it."""
    instances = (status or {}).get("instances") or {}
    counts = Tally(str(r.get("state")) for r in instances.values() if isinstance(r, Mapping))
    counts.update(unlisted_counts((status or {}).get("summary") or {}, counts))  # a selector rollout's
    _set_counts(namespace, name, counts)
    conditions = (status or {}).get("conditions") or ()
    _set_conditions(
        namespace,
        name,
        (
            (str(c.get("type")), str(c.get("status")), str(c.get("reason")))
            for c in conditions
            if isinstance(c, Mapping)
        ),
    )


def set_rollout_summary(namespace: str, name: str, status: RolloutStatus) -> None:
    """Set the per-state and condition gauges of one rollout from the status model the cycle wrote."""
    _set_states(namespace, name, (str(record.state) for record in status.instances.values()))
    _set_conditions(namespace, name, ((c.type, str(c.status), c.reason) for c in status.conditions))


def _set_conditions(namespace: str, name: str, conditions: Iterable[tuple[str, str, str]]) -> None:
    """One series a condition type, value 1; a known type only, an unknown reason as Other."""
    wanted = {
        type_: (
            status if status in _STATUSES else ConditionStatus.UNKNOWN.value,
            reason if reason in _REASONS else OTHER_REASON,
        )
        for type_, status, reason in conditions
        if type_ in CONDITION_TYPES
    }
    with _condition_lock:
        old = _condition_series.pop((namespace, name), {})
        for type_, labels in old.items():
            if wanted.get(type_) != labels:
                with suppress(KeyError):
                    CONDITIONS.remove(namespace, name, type_, *labels)
        for type_, labels in wanted.items():
            CONDITIONS.labels(namespace, name, type_, *labels).set(1)
        if wanted:
            _condition_series[(namespace, name)] = wanted


def _set_states(namespace: str, name: str, states: Iterable[str]) -> None:
    _set_counts(namespace, name, Tally(states))


def _set_counts(namespace: str, name: str, counts: Mapping[str, int]) -> None:
    for state in STATES:  # every state, zeros included
        INSTANCES.labels(namespace, name, state).set(counts.get(state, 0))


def forget_rollout(namespace: str, name: str) -> None:
    """Drop a deleted rollout's series."""
    for state in STATES:
        with suppress(KeyError):  # never set: nothing to remove
            INSTANCES.remove(namespace, name, state)
    _set_conditions(namespace, name, ())


def serve(port: int, addr: str = "0.0.0.0", registry: CollectorRegistry = REGISTRY) -> None:  # noqa: S104
    """Serve `/metrics` on a background thread (0: no server)."""
    if port <= 0:
        return
    start_http_server(port, addr=addr, registry=registry)
    log.info("serving Prometheus metrics on http://%s:%d/metrics", addr, port)


def register_kopf_handlers() -> None:
    """Keep `agentrollout_instances` and `agentrollout_condition` in step with every rollout's status,
    settled or not, and drop a deleted rollout's series. A watch-event handler: it adds no finalizer
    and patches nothing."""
    import kopf

    from cloudeye_operator import kube

    @kopf.on.event(kube.GROUP, kube.VERSION, kube.PLURAL, id=METRICS_HANDLER_ID)
    def rollout_metrics(
        type: str | None, namespace: str | None, name: str, status: Mapping[str, Any], **_: Any
    ) -> None:
        ns = namespace or "default"
        if type == "DELETED":
            forget_rollout(ns, name)
        else:
            set_rollout_instances(ns, name, status)
