"""choose_poll (guarantee 3) and what the next plan needs listed."""

from __future__ import annotations

import pytest

from cloudeye_operator.rollout import (
    PollMode,
    PollNeeds,
    PollPlan,
    RolloutStatus,
    choose_poll,
    observation_needs,
)
from cloudeye_operator.rollout.polling import TaskCounts, listing_worth_it

from ._sim import at, ids, make_spec, make_status

I = ids(10)  # noqa: E741


@pytest.mark.parametrize(
    ("unfinished", "count", "discover", "expected"),
    [
        (0, 5000, 0, PollPlan(PollMode.NONE, 0)),
        (3, 5000, 0, PollPlan(PollMode.PER_ITEM, 3)),  # 3 GETs beat 50 pages
        (49, 5000, 0, PollPlan(PollMode.PER_ITEM, 49)),  # 49 GETs beat 50 pages, by one
        (50, 5000, 0, PollPlan(PollMode.PROJECT, 50)),  # a tie: one consistent snapshot
        (51, 5000, 0, PollPlan(PollMode.PROJECT, 50)),
        (2500, 10_000, 0, PollPlan(PollMode.PROJECT, 100)),
        (1, 0, 0, PollPlan(PollMode.PROJECT, 1)),  # an empty project is still one call
        (1, 250, 0, PollPlan(PollMode.PER_ITEM, 1)),
        (2, 101, 0, PollPlan(PollMode.PROJECT, 2)),
        (1, 5000, 2, PollPlan(PollMode.PER_ITEM, 3)),  # instances to discover cost one GET each
        (0, 5000, 60, PollPlan(PollMode.PROJECT, 50)),
        (1, None, 0, PollPlan(PollMode.PER_ITEM, 1)),  # count unknown: a single GET is cheapest
        (2, None, 0, PollPlan(PollMode.PROJECT, None)),  # count unknown: list, and learn it
    ],
)
def test_choose_poll(unfinished: int, count: int | None, discover: int, expected: PollPlan) -> None:
    assert choose_poll(unfinished, count, instances_to_list=discover) == expected


@pytest.mark.parametrize(
    ("count", "per_item", "pages_done", "worth_it"),
    [
        # Before listing (choose_poll): the whole listing against the per-item queries.
        (5000, 49, 0, False),
        (5000, 50, 0, True),  # a tie: the listing wins
        (0, 1, 0, True),
        (101, 1, 0, False),
        # After the first page (the reconciler's cut-off when the count was unknown): that page is
        # spent either way, so only the pages left count.
        (5000, 48, 1, False),
        (5000, 49, 1, True),  # 49 pages left against 49 queries: a tie, the listing goes on
        (200, 1, 1, True),
        (201, 1, 1, False),
        (100, 0, 1, True),  # one page was all there was
    ],
)
def test_listing_worth_it(count: int, per_item: int, pages_done: int, worth_it: bool) -> None:
    assert listing_worth_it(count, per_item, pages_done=pages_done) is worth_it


def test_task_counts_learn_by_listing_and_follow_creates() -> None:
    counts = TaskCounts()
    project = ("https://ces.example", "p1")
    counts.created(project, 5)
    assert counts.estimate(project) is None  # unknown stays unknown: only a listing tells
    counts.listed(project, 120)
    counts.created(project, 5)
    assert counts.estimate(project) == 125
    assert counts.estimate(("https://ces.example", "p2")) is None


def test_needs_of_a_rollout_in_progress() -> None:
    spec = make_spec(I[:5])
    status = make_status(
        spec,
        {
            I[0]: {"state": "PENDING", "invocationId": "t0"},
            I[1]: {"state": "RUNNING", "invocationId": "t1"},
            I[2]: {"state": "CREATING"},
            I[3]: {"state": "SUCCEEDED", "invocationId": "t3"},
        },
        intents={"k": {"action": "UPDATE", "instanceIds": [I[2]], "createdAt": at(0)}},
    )
    # I[2]: its intent's task is found by listing; I[4]: not started, so its history is listed before
    # an intent is made for it (guarantee 1).
    assert observation_needs(spec, status) == PollNeeds(("t0", "t1"), (I[2], I[4]))


def test_needs_of_a_rollback_include_the_history_of_instances_not_started() -> None:
    spec = make_spec(I[:3], action="ROLLBACK")
    assert observation_needs(spec, RolloutStatus()) == PollNeeds((), tuple(I[:3]))
    status = make_status(
        spec,
        {
            I[0]: {"state": "ROLLING_BACK", "invocationId": "r0", "rollbackOf": "u0"},
            I[1]: {"state": "SKIPPED"},
        },
    )
    assert observation_needs(spec, status) == PollNeeds(("r0",), (I[2],))


def test_needs_of_a_rollback_on_failure_whose_update_task_is_not_in_status() -> None:
    # After a restart the status has no SUCCEEDED task ids (compact wire form): the UPDATE task to undo
    # is found by listing the instance's history.
    spec = make_spec(I[:3], strategy={"rollbackOnFailure": True})
    status = make_status(
        spec,
        {
            I[0]: {"state": "WAITING", "action": "ROLLBACK"},
            I[1]: {"state": "WAITING", "action": "ROLLBACK", "rollbackOf": "u1"},
            I[2]: {"state": "GAVE_UP", "invocationId": "t2"},
        },
    )
    assert observation_needs(spec, status) == PollNeeds((), (I[0], I[1]))


def test_needs_ignore_instances_no_longer_in_the_spec() -> None:
    status = make_status(make_spec(I[:2]), {I[1]: {"state": "RUNNING", "invocationId": "t1"}})
    assert observation_needs(make_spec(I[:1]), status) == PollNeeds((), (I[0],))


def test_needs_list_the_history_of_what_may_start_and_no_more() -> None:
    # An intent is only made for an instance whose whole history was listed in the same cycle: the
    # retries, and the first maxInFlight servers not started (spec order); nothing while paused.
    spec = make_spec(I[:6], strategy={"maxInFlight": 2})
    status = make_status(
        spec,
        {
            I[0]: {"state": "RETRY_WAIT", "invocationId": "t0", "failure": "FAILED"},
            I[1]: {"state": "SUCCEEDED"},
            I[2]: {"state": "RUNNING", "invocationId": "t2"},
        },
    )
    assert observation_needs(spec, status) == PollNeeds(("t2",), (I[0], I[3], I[4]))
    paused = make_spec(I[:6], strategy={"maxInFlight": 2}, paused=True)
    assert observation_needs(paused, status) == PollNeeds(("t2",), ())


def test_needs_of_a_new_revision_list_the_servers_it_will_start() -> None:
    # A version edit resets every server to WAITING in the cycle that switches the revision.
    old = make_spec(I[:3], version="2.7.2")
    status = make_status(old, {iid: {"state": "SUCCEEDED"} for iid in I[:3]})
    new = make_spec(I[:3], version="2.7.3", strategy={"maxInFlight": 2})
    assert observation_needs(old, status) == PollNeeds((), ())
    assert observation_needs(new, status) == PollNeeds((), (I[0], I[1]))
