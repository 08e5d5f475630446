"""Logging: kopf's formats (plain, full, json) plus rollout and instance context on every line.

A reconcile cycle runs inside `log_context(rollout="ns/name")` (a contextvar, so concurrent cycles of
different rollouts never mix), and a batch-create inside `action_context(action)`, which names the
instances (or tasks) it is about. `ContextFilter`, installed on kopf's root handler, copies those
fields onto every record logged meanwhile, from any module (our own, httpx, kopf's): with
`--log-format json` (python-json-logger, through kopf) they become JSON keys:

    {"message": "retrying batch_create after: ...", "rollout": "prod/update-web",
     "action": "UPDATE", "instances": "srv-0001,srv-0002,srv-0003 (+97 more)", "severity": "info", ...}

kopf's own per-object log lines carry `object` (kopf's reference); the filter adds `rollout` to them as
well, so one key finds every line about a rollout. The text formats are kopf's, unchanged. Secrets
never reach a log record in the first place (see credentials.py); nothing here adds any.

This module is also the home of the operator's other log filter, `QuietSuccessFilter`, which drops
kopf's success line of the watch-event handlers (metrics, and handlers.py's spec wakeup).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Final

import kopf

from cloudeye_operator.metrics import METRICS_HANDLER_ID
from cloudeye_operator.rollout import TaskAction

MAX_IDS_IN_LINE: Final = 5
_context: ContextVar[dict[str, str] | None] = ContextVar("cloudeye_log_context", default=None)


@contextmanager
def log_context(**fields: str) -> Iterator[None]:
    """Add fields to every log record made in this (async) context."""
    token = _context.set({**(_context.get() or {}), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def _ids(ids: Sequence[str]) -> str:
    shown = ",".join(ids[:MAX_IDS_IN_LINE])
    return shown if len(ids) <= MAX_IDS_IN_LINE else f"{shown} (+{len(ids) - MAX_IDS_IN_LINE} more)"


@contextmanager
def action_context(action: TaskAction) -> Iterator[None]:
    """The instances (a create) or tasks (a retry or rollback) a batch-create is about."""
    what = "invocations" if action.on_tasks else "instances"
    fields = {"action": action.invocation_type.value, what: _ids(action.ids)}
    with log_context(**fields):
        yield


class ContextFilter(logging.Filter):
    """Copy the current log context, and kopf's object reference as `rollout`, onto each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (_context.get() or {}).items():
            if not hasattr(record, key):
                setattr(record, key, value)
        ref: Any = getattr(record, "k8s_ref", None)
        if not hasattr(record, "rollout") and isinstance(ref, dict) and ref.get("name"):
            namespace = ref.get("namespace")
            record.rollout = f"{namespace}/{ref['name']}" if namespace else str(ref["name"])
        return True


class QuietSuccessFilter(logging.Filter):
    """A log filter that drops kopf's "Handler '<id>' succeeded." line for the given handler ids.

    Use it for watch-event handlers: kopf runs them on every watch event (every status write) of
    every rollout, so their success line carries no information. Their other lines (a failure, a
    retry) still get through.
    """

    def __init__(self, *handler_ids: str) -> None:
        super().__init__()
        self._lines: Final = frozenset(f"Handler {handler_id!r} succeeded." for handler_id in handler_ids)

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() not in self._lines


def configure(log_format: str, *, debug: bool = False, verbose: bool = False, quiet: bool = False) -> None:
    """kopf's logging setup in `log_format` (plain, full, json), with the context filter, and without
    the metrics handler's success line."""
    kopf.configure(debug=debug, verbose=verbose, quiet=quiet, log_format=kopf.LogFormat[log_format.upper()])
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, ContextFilter) for f in handler.filters):
            handler.addFilter(ContextFilter())
        if not any(isinstance(f, QuietSuccessFilter) for f in handler.filters):
            handler.addFilter(QuietSuccessFilter(METRICS_HANDLER_ID))
    # httpcore's DEBUG trace prints raw response headers, X-Subject-Token (an IAM token) among them:
    # never let it through, whatever the verbosity (guarantee 4).
    logging.getLogger("httpcore").setLevel(logging.INFO)
    if not debug:
        logging.getLogger("httpx").setLevel(logging.WARNING)
