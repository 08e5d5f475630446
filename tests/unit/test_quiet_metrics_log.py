"""The metrics watch handler runs on every event of every rollout: its success line is not logged."""

from __future__ import annotations

import logging

from cloudeye_operator.logging_setup import QuietSuccessFilter
from cloudeye_operator.metrics import METRICS_HANDLER_ID


def _record(message: str) -> logging.LogRecord:
    return logging.LogRecord("kopf.objects", logging.INFO, __file__, 1, message, None, None)


def test_only_the_metrics_handler_success_line_is_dropped() -> None:
    quiet = QuietSuccessFilter(METRICS_HANDLER_ID)
    assert not quiet.filter(_record(f"Handler {METRICS_HANDLER_ID!r} succeeded."))
    assert quiet.filter(_record("Handler 'drive' succeeded."))
    assert quiet.filter(_record(f"Handler {METRICS_HANDLER_ID!r} failed with an exception. Will retry."))
