"""The emulator clock: epoch seconds that flow with real time (scaled) plus a manual offset.

``time_scale`` 1.0 is real time, 10.0 runs ten times faster, 0.0 freezes the clock so that only
``advance`` moves it (what deterministic tests want). The clock never goes backwards.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Clock:
    def __init__(
        self,
        time_scale: float = 1.0,
        *,
        start: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if time_scale < 0:
            raise ValueError("time_scale must not be negative")
        self.time_scale = time_scale
        self._monotonic = monotonic
        self._origin_mono = monotonic()
        self._origin = time.time() if start is None else start
        self._offset = 0.0
        self._lock = threading.Lock()  # advance() may be called from a test's thread

    def now(self) -> float:
        """Seconds since the epoch on the emulator clock."""
        elapsed = (self._monotonic() - self._origin_mono) * self.time_scale
        with self._lock:
            return self._origin + elapsed + self._offset

    def advance(self, seconds: float) -> float:
        """Move the clock forward; returns the new time."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._offset += seconds
        return self.now()
