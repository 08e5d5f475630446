"""One whole-project task listing shared by the rollouts that poll the same project (guarantee 3).

Fifty rollouts in one project would otherwise each page through the same project every cycle: fifty
times the calls and fifty copies of every task in memory. A listing is shared on conditions that keep a
shared listing as good as a fresh one for the planner (guarantee 1):

- it started after the last batch-create through the same client finished, so it cannot miss a
  task that any rollout already knows it created (or may have created);
- it is younger than `max_age` seconds, so a status lags the cloud by at most that;
- the same consumer (a rollout) never gets the same listing twice: each of its cycles sees a listing
  newer than its previous cycle's;
- it kept every task of the instances the consumer wants. A listing keeps only the tasks
  of the instances wanted by the consumers registered for its project when its last page arrives, so
  memory grows with the rollouts, not with the project's history. Whoever joins a listing in flight
  registers first, so it is kept; a consumer that wants more than a finished listing kept (a rollout
  that started or grew since) gets a new listing.

Callers arriving while a listing is in flight join it instead of starting another. Once every consumer
registered for a project has taken a listing it is released: none of them may take it again.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import math
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from cloudeye_operator.cloudeye.models import ListedTask

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ProjectListing:
    """A whole-project listing, lean: the tasks of the instances in `kept`, by instance."""

    by_instance: Mapping[str, Sequence[ListedTask]]
    count: int
    """The total the cloud reported on the last page (every task of the project, kept or not)."""
    calls: int
    kept: frozenset[str] | None
    """The instances whose every task is here; None: every instance of the project."""

    @classmethod
    def collect(
        cls, pages: Iterable[Iterable[ListedTask]], kept: frozenset[str] | None, count: int, calls: int
    ) -> ProjectListing:
        """Index the tasks of kept instances, first copy of each task id only (pages may shift)."""
        index: dict[str, list[ListedTask]] = {}
        seen: set[str] = set()
        for page in pages:
            for task in page:
                if (kept is None or task.instance_id in kept) and task.invocation_id not in seen:
                    seen.add(task.invocation_id)
                    index.setdefault(task.instance_id, []).append(task)
        return cls(index, count, calls, kept)

    def covers(self, instances: frozenset[str]) -> bool:
        return self.kept is None or instances <= self.kept

    def tasks_of(self, instances: Iterable[str]) -> Iterator[ListedTask]:
        for instance in instances:
            yield from self.by_instance.get(instance, ())


@dataclass
class _Entry(Generic[T]):
    started: float
    serial: int
    task: asyncio.Future[T]


@dataclass
class SharedListings(Generic[T]):
    max_age: float = 5.0
    clock: Callable[[], float] = time.monotonic
    _entries: dict[Hashable, _Entry[T]] = field(default_factory=dict)
    _last_create: dict[Hashable, float] = field(default_factory=dict)
    _seen_by: dict[Hashable, int] = field(default_factory=dict)
    """The serial of the listing each consumer took last (not the listing: that would keep it alive)."""
    _wants: dict[Hashable, dict[Hashable, frozenset[str]]] = field(default_factory=dict)
    """Per key, the instances each registered consumer wants."""
    _key_of: dict[Hashable, Hashable] = field(default_factory=dict)
    _union: dict[Hashable, frozenset[str]] = field(default_factory=dict)
    _serials: Iterator[int] = field(default_factory=itertools.count)
    fetches: int = 0
    """Listings actually made (the rest were shared)."""

    def note_create(self, key: Hashable) -> None:
        """A batch-create through `key` just ended (in any way): older listings may miss its tasks."""
        self._last_create[key] = self.clock()

    async def get_part(
        self,
        key: Hashable,
        consumer: Hashable,
        wants: frozenset[str],
        fetch: Callable[[Callable[[], frozenset[str]]], Awaitable[T]],
        covers: Callable[[T, frozenset[str]], bool],
    ) -> T:
        """A listing that kept at least every task of the instances in `wants`.

        `fetch(wanted)` must keep every task of the instances in `wanted()` called once its last page
        has arrived: what the consumers registered for `key` want then, this one and any that joined.
        `covers(listing, wants)`: whether a finished listing kept every task of those instances.
        """
        self._want(key, consumer, wants)
        result = await self._get(
            key,
            consumer,
            lambda: fetch(lambda: self._union.get(key, wants)),
            lambda listing: covers(listing, wants),
        )
        if not covers(result, wants):  # a fetch that did not keep what it was asked to keep
            raise RuntimeError(f"the shared listing does not cover what {consumer} wants")
        self._release_if_taken(key)
        return result

    async def _get(
        self,
        key: Hashable,
        consumer: Hashable,
        fetch: Callable[[], Awaitable[T]],
        covers: Callable[[T], bool],
    ) -> T:
        now = self.clock()
        entry = self._entries.get(key)
        if (
            entry is None
            or not self._usable(key, entry, now)
            or self._seen_by.get(consumer) == entry.serial
            or not self._covers(entry, covers)
        ):
            entry = _Entry(now, next(self._serials), asyncio.ensure_future(fetch()))
            self._entries[key] = entry
            self.fetches += 1
            entry.task.add_done_callback(functools.partial(self._forget_failed, key, entry))
        self._seen_by[consumer] = entry.serial
        # shield: one caller being cancelled must not cancel the listing the others wait for.
        return await asyncio.shield(entry.task)

    @staticmethod
    def _covers(entry: _Entry[T], covers: Callable[[T], bool]) -> bool:
        # In flight: it will keep what this consumer (registered before joining) wants.
        return (
            not entry.task.done()
            or entry.task.cancelled()
            or entry.task.exception() is not None
            or covers(entry.task.result())
        )

    def _want(self, key: Hashable, consumer: Hashable, wants: frozenset[str]) -> None:
        old_key = self._key_of.get(consumer)
        if old_key is not None and old_key != key:
            self._unregister(old_key, consumer)
        registered = self._wants.setdefault(key, {})
        if registered.get(consumer) != wants:
            registered[consumer] = wants
            self._union[key] = frozenset().union(*registered.values())
        self._key_of[consumer] = key

    def forget(self, consumer: Hashable) -> None:
        """A consumer that does not list its project now (finished, or polling task by task): its
        instances are no longer kept, and listings are released without waiting for it."""
        key = self._key_of.pop(consumer, None)
        if key is not None:
            self._unregister(key, consumer)

    def _unregister(self, key: Hashable, consumer: Hashable) -> None:
        registered = self._wants.get(key, {})
        registered.pop(consumer, None)
        if registered:
            self._union[key] = frozenset().union(*registered.values())
        else:
            self._wants.pop(key, None)
            self._union.pop(key, None)

    def _release_if_taken(self, key: Hashable) -> None:
        entry = self._entries.get(key)
        if entry is None or not entry.task.done():
            return
        if all(self._seen_by.get(c) == entry.serial for c in self._wants.get(key, ())):
            del self._entries[key]  # every registered consumer took it, and none may take it again

    def _usable(self, key: Hashable, entry: _Entry[T], now: float) -> bool:
        return entry.started > self._last_create.get(key, -math.inf) and now - entry.started < self.max_age

    def _forget_failed(self, key: Hashable, entry: _Entry[T], task: asyncio.Future[T]) -> None:
        if (task.cancelled() or task.exception() is not None) and self._entries.get(key) is entry:
            del self._entries[key]  # the next caller tries again rather than sharing the failure
