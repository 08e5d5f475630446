"""SharedListings: when one whole-project listing may serve several rollouts (listings.py)."""

from __future__ import annotations

import asyncio

import pytest

from cloudeye_operator.listings import SharedListings


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _fetcher(counter: list[int]):  # type: ignore[no-untyped-def]
    async def fetch() -> int:
        counter.append(1)
        await asyncio.sleep(0)
        return len(counter)

    return fetch


async def test_rollouts_share_a_fresh_listing_but_never_see_the_same_one_twice(clock: Clock) -> None:
    shared: SharedListings[int] = SharedListings(max_age=5.0, clock=clock)
    calls: list[int] = []
    fetch = _fetcher(calls)
    assert await shared.get("project", "a", fetch) == 1
    assert await shared.get("project", "b", fetch) == 1  # shared
    assert await shared.get("project", "a", fetch) == 2  # a's next cycle: a newer listing
    assert await shared.get("project", "b", fetch) == 2
    assert shared.fetches == 2


async def test_a_create_or_age_makes_a_listing_unusable(clock: Clock) -> None:
    shared: SharedListings[int] = SharedListings(max_age=5.0, clock=clock)
    calls: list[int] = []
    fetch = _fetcher(calls)
    await shared.get("project", "a", fetch)
    shared.note_create("project")  # may hold tasks the old listing misses
    assert await shared.get("project", "b", fetch) == 2
    clock.now += 5.0
    assert await shared.get("project", "c", fetch) == 3  # too old
    assert await shared.get("other", "c", fetch) == 4  # another project (client): its own listing


async def test_callers_join_a_listing_in_flight_and_a_failure_is_not_shared(clock: Clock) -> None:
    shared: SharedListings[int] = SharedListings(max_age=5.0, clock=clock)
    started = asyncio.Event()
    release = asyncio.Event()
    calls: list[int] = []

    async def slow() -> int:
        calls.append(1)
        started.set()
        await release.wait()
        return 7

    first = asyncio.ensure_future(shared.get("p", "a", slow))
    await started.wait()
    second = asyncio.ensure_future(shared.get("p", "b", slow))
    release.set()
    assert await asyncio.gather(first, second) == [7, 7]
    assert len(calls) == 1

    async def broken() -> int:
        raise RuntimeError("list failed")

    with pytest.raises(RuntimeError):
        await shared.get("q", "a", broken)
    assert await shared.get("q", "b", _fetcher([])) == 1  # the failure was forgotten, not shared
