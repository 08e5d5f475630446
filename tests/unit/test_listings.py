"""SharedListings: when one whole-project listing may serve several rollouts (listings.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from cloudeye_operator.listings import SharedListings

WANTS = frozenset({"srv-1"})
Fetch = Callable[[Callable[[], frozenset[str]]], Awaitable[int]]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _fetcher(counter: list[int]) -> Fetch:
    async def fetch(wanted: Callable[[], frozenset[str]]) -> int:
        counter.append(1)
        await asyncio.sleep(0)
        return len(counter)

    return fetch


def _covers(listing: int, wants: frozenset[str]) -> bool:
    return True  # a numbered listing stands for one that kept every task


async def _take(shared: SharedListings[int], key: str, consumer: str, fetch: Fetch) -> int:
    return await shared.get_part(key, consumer, WANTS, fetch, _covers)


async def test_rollouts_share_a_fresh_listing_but_never_see_the_same_one_twice(clock: Clock) -> None:
    shared: SharedListings[int] = SharedListings(max_age=5.0, clock=clock)
    calls: list[int] = []
    fetch = _fetcher(calls)
    assert await _take(shared, "project", "a", fetch) == 1  # a alone registered: released once taken
    assert await _take(shared, "project", "b", fetch) == 2
    assert await _take(shared, "project", "a", fetch) == 2  # shared
    assert await _take(shared, "project", "b", fetch) == 3  # b's next cycle: a newer listing
    assert await _take(shared, "project", "a", fetch) == 3
    assert shared.fetches == 3


async def test_a_create_or_age_makes_a_listing_unusable(clock: Clock) -> None:
    shared: SharedListings[int] = SharedListings(max_age=5.0, clock=clock)
    calls: list[int] = []
    fetch = _fetcher(calls)
    await _take(shared, "project", "a", fetch)
    await _take(shared, "project", "b", fetch)  # a has not taken it: kept for a
    shared.note_create("project")  # may hold tasks the old listing misses
    assert await _take(shared, "project", "a", fetch) == 3
    clock.now += 5.0
    assert await _take(shared, "project", "b", fetch) == 4  # too old
    assert await _take(shared, "other", "c", fetch) == 5  # another project (client): its own listing


async def test_callers_join_a_listing_in_flight_and_a_failure_is_not_shared(clock: Clock) -> None:
    shared: SharedListings[int] = SharedListings(max_age=5.0, clock=clock)
    started = asyncio.Event()
    release = asyncio.Event()
    calls: list[int] = []

    async def slow(wanted: Callable[[], frozenset[str]]) -> int:
        calls.append(1)
        started.set()
        await release.wait()
        return 7

    first = asyncio.ensure_future(_take(shared, "p", "a", slow))
    await started.wait()
    second = asyncio.ensure_future(_take(shared, "p", "b", slow))
    release.set()
    assert await asyncio.gather(first, second) == [7, 7]
    assert len(calls) == 1

    async def broken(wanted: Callable[[], frozenset[str]]) -> int:
        raise RuntimeError("list failed")

    with pytest.raises(RuntimeError):
        await _take(shared, "q", "a", broken)
    assert await _take(shared, "q", "b", _fetcher([])) == 1  # the failure was forgotten, not shared
