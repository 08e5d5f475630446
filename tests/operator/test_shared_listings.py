"""Partial shared listings (listings.py `get_part`): a listing keeps only the tasks of the instances its
project's rollouts want, yet never misses one for a rollout that takes it (guarantee 1); and the lean
tasks it holds become the planner's models only when read."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from cloudeye_operator.cloudeye.models import InvocationStatus, InvocationType, ListedTask
from cloudeye_operator.listings import ProjectListing, SharedListings
from cloudeye_operator.rollout import Observation


def task(tid: str, instance: str, created: int = 0) -> ListedTask:
    return ListedTask(
        invocation_id=tid,
        instance_id=instance,
        invocation_type=InvocationType.UPDATE,
        invocation_status=InvocationStatus.RUNNING,
        create_time=created,
    )


# The project: two tasks on a, one on b, one on c, and 1,000 old tasks on servers nobody rolls out.
PROJECT = [task("t1", "a"), task("t2", "a", 5), task("t3", "b"), task("t4", "c")]
PROJECT += [task(f"old-{i}", f"old-{i % 100}") for i in range(1000)]


class Cloud:
    """Lists PROJECT in pages, one loop step per page; counts listings."""

    def __init__(self) -> None:
        self.listings = 0
        self.paging = asyncio.Event()
        self.release = asyncio.Event()
        self.release.set()

    async def fetch(self, wanted: Callable[[], frozenset[str]]) -> ProjectListing:
        self.listings += 1
        pages = []
        for start in range(0, len(PROJECT), 100):
            self.paging.set()
            await self.release.wait()
            pages.append(PROJECT[start : start + 100])
        return ProjectListing.collect(pages, wanted(), len(PROJECT), len(pages))


def covers(listing: ProjectListing, instances: frozenset[str]) -> bool:
    return listing.covers(instances)


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def shared() -> SharedListings[ProjectListing]:
    return SharedListings(max_age=5.0, clock=Clock())


def ids(listing: ProjectListing, instances: list[str]) -> list[str]:
    return [t.invocation_id for t in listing.tasks_of(instances)]


async def test_a_listing_keeps_only_the_wanted_instances_and_serves_each_its_part(
    shared: SharedListings[ProjectListing],
) -> None:
    cloud = Cloud()
    first = await shared.get_part("p", "r1", frozenset({"a"}), cloud.fetch, covers)
    assert ids(first, ["a"]) == ["t1", "t2"]
    assert set(first.by_instance) == {"a"}  # b, c and the old servers were dropped
    assert first.count == len(PROJECT)


async def test_rollouts_joining_a_listing_in_flight_are_kept_one_listing_for_all(
    shared: SharedListings[ProjectListing],
) -> None:
    cloud = Cloud()
    cloud.release.clear()
    r1 = asyncio.ensure_future(shared.get_part("p", "r1", frozenset({"a"}), cloud.fetch, covers))
    await cloud.paging.wait()  # the listing has started paging for r1 alone
    r2 = asyncio.ensure_future(shared.get_part("p", "r2", frozenset({"b"}), cloud.fetch, covers))
    await asyncio.sleep(0)
    cloud.release.set()
    one, two = await asyncio.gather(r1, r2)
    assert one is two
    assert cloud.listings == 1
    assert ids(two, ["b"]) == ["t3"]
    assert set(two.by_instance) == {"a", "b"}


async def test_a_rollout_wanting_more_than_a_finished_listing_kept_gets_a_new_one(
    shared: SharedListings[ProjectListing],
) -> None:
    cloud = Cloud()
    await shared.get_part("p", "r1", frozenset({"a"}), cloud.fetch, covers)
    later = await shared.get_part("p", "r2", frozenset({"c"}), cloud.fetch, covers)
    assert cloud.listings == 2  # fresh enough to share, but it dropped c's tasks
    assert ids(later, ["c"]) == ["t4"]
    assert set(later.by_instance) == {"a", "c"}  # r1 is still registered: kept for it too
    # A rollout wanting what is kept shares it; r2 grown to {b, c} does not.
    assert await shared.get_part("p", "r3", frozenset({"a", "c"}), cloud.fetch, covers) is later
    grown = await shared.get_part("p", "r2", frozenset({"b", "c"}), cloud.fetch, covers)
    assert grown is not later
    assert ids(grown, ["b", "c"]) == ["t3", "t4"]


async def test_a_listing_is_released_once_every_registered_rollout_took_it(
    shared: SharedListings[ProjectListing],
) -> None:
    cloud = Cloud()
    await shared.get_part("p", "r1", frozenset({"a"}), cloud.fetch, covers)
    await shared.get_part("p", "r2", frozenset({"a"}), cloud.fetch, covers)  # r1 alone took the first: gone
    assert cloud.listings == 2
    await shared.get_part("p", "r1", frozenset({"a"}), cloud.fetch, covers)  # shares r2's, releases it
    assert cloud.listings == 2
    # Released: a rollout new to the project lists afresh although the listing is young.
    await shared.get_part("p", "r3", frozenset({"a"}), cloud.fetch, covers)
    assert cloud.listings == 3


async def test_a_forgotten_rollout_is_neither_kept_nor_waited_for(
    shared: SharedListings[ProjectListing],
) -> None:
    cloud = Cloud()
    await shared.get_part("p", "r1", frozenset({"a"}), cloud.fetch, covers)
    shared.forget("r1")  # finished: polls no more
    listing = await shared.get_part("p", "r2", frozenset({"b"}), cloud.fetch, covers)
    assert set(listing.by_instance) == {"b"}
    again = await shared.get_part("p", "r3", frozenset({"b"}), cloud.fetch, covers)
    assert again is not listing  # r2 was the only other one registered: released when it took it
    assert cloud.listings == 3


async def test_a_create_still_makes_a_partial_listing_unusable(
    shared: SharedListings[ProjectListing],
) -> None:
    cloud = Cloud()
    await shared.get_part("p", "r1", frozenset({"a"}), cloud.fetch, covers)
    await shared.get_part("p", "r2", frozenset({"a"}), cloud.fetch, covers)
    shared.note_create("p")
    await shared.get_part("p", "r3", frozenset({"a"}), cloud.fetch, covers)
    assert cloud.listings == 3


def test_collect_keeps_the_first_copy_of_a_task_listed_twice() -> None:
    moved = task("t1", "a", 99)  # pages shifted: t1 again, read later
    listing = ProjectListing.collect([[task("t1", "a")], [moved, task("t3", "b")]], frozenset({"a"}), 3, 2)
    assert [t.create_time for t in listing.tasks_of(["a"])] == [0]
    assert listing.covers(frozenset({"a"}))
    assert not listing.covers(frozenset({"a", "b"}))


def test_the_planner_reads_listed_tasks_as_they_are() -> None:
    # ListedTask is an observation.Task: no InvocationInfo is built for the planner.
    listed = [task("t1", "a"), task("t2", "a", 5), task("t3", "b")]
    observed = Observation.of(listed)
    assert [t.invocation_id for t in observed.for_instance("a")] == ["t1", "t2"]
    assert observed.get("t3") is listed[2]
    assert observed.get("zz") is None
    assert observed.covers("anything")
