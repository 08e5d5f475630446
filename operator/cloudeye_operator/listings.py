"""One whole-project task listing shared by the rollouts that poll the same project (rule 3).

Fifty rollouts in one project would otherwise each page through the same project every cycle: fifty
times the calls and fifty copies of every task in memory. A listing is shared on two conditions
that keep a shared listing as good as a fresh one for the planner (rule 1):

- it started after the last batch-create through the same client finished, so it cannot miss a
  task that any rollout already knows it created (or may have created);
- it is younger than `max_age` seconds, so a status lags the cloud by at most that;
- the same consumer (a rollout) never gets the same listing twice: each of its cycles sees a listing
  newer than its previous cycle's.

Callers arriving while a listing is in flight join it instead of starting another.
"""

from __future__ import annotations

import asyncio
import functools
import math
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class _Entry(Generic[T]):
    started: float
    task: asyncio.Future[T]


@dataclass
class SharedListings(Generic[T]):
    max_age: float = 5.0
    clock: Callable[[], float] = time.monotonic
    _entries: dict[Hashable, _Entry[T]] = field(default_factory=dict)
    _last_create: dict[Hashable, float] = field(default_factory=dict)
    _seen_by: dict[Hashable, _Entry[T]] = field(default_factory=dict)
    fetches: int = 0
    """Listings actually made (the rest were shared)."""

    def note_create(self, key: Hashable) -> None:
        """A batch-create through `key` just ended (in any way): older listings may miss its tasks."""
        self._last_create[key] = self.clock()

    async def get(self, key: Hashable, consumer: Hashable, fetch: Callable[[], Awaitable[T]]) -> T:
        now = self.clock()
        entry = self._entries.get(key)
        if entry is None or not self._usable(key, entry, now) or self._seen_by.get(consumer) is entry:
            entry = _Entry(now, asyncio.ensure_future(fetch()))
            self._entries[key] = entry
            self.fetches += 1
            entry.task.add_done_callback(functools.partial(self._forget_failed, key, entry))
        self._seen_by[consumer] = entry
        # shield: one caller being cancelled must not cancel the listing the others wait for.
        return await asyncio.shield(entry.task)

    def _usable(self, key: Hashable, entry: _Entry[T], now: float) -> bool:
        return entry.started > self._last_create.get(key, -math.inf) and now - entry.started < self.max_age

    def _forget_failed(self, key: Hashable, entry: _Entry[T], task: asyncio.Future[T]) -> None:
        if (task.cancelled() or task.exception() is not None) and self._entries.get(key) is entry:
            del self._entries[key]  # the next caller tries again rather than sharing the failure
