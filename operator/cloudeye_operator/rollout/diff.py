"""The status patch: a JSON merge patch (RFC 7386) carrying only what changed.

The per-instance map exists for this: a cycle in which 3 of 10,000 instances moved patches 3 entries.
Lists (conditions, an intent's ids) are replaced whole, as RFC 7386 says. Pass as `old` the status you
planned from, as `RolloutStatus.to_dict()` made it: keys absent from `new` become null (deleted).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cloudeye_operator.rollout.status import RolloutStatus, instance_wire, revision_action


def status_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any] | None:
    """The merge patch turning `old` into `new`; None when they are equal.

    A null in `new` means "absent" (a merge patch cannot store null).
    """
    patch = _diff(old, new)
    return patch or None


def _diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    patch: dict[str, Any] = {}
    for key in old:
        if (key not in new or new[key] is None) and old[key] is not None:
            patch[key] = None
    for key, value in new.items():
        if value is None:
            continue
        before = old.get(key)
        if key in old and value == before:
            continue  # most of a 10,000-entry map: one C-level comparison each
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            sub = _diff(before, value)
            if sub:
                patch[key] = sub
        else:
            patch[key] = _strip_nulls(value)
    return patch


def _strip_nulls(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _strip_nulls(v) for k, v in value.items() if v is not None}
    return value


def status_patch_between(old: RolloutStatus, new: RolloutStatus) -> dict[str, Any] | None:
    """`status_patch(old.to_dict(), new.to_dict())`, at a cost in proportion to what changed.

    The planner shares unchanged instance records between its input and its output, so they are
    skipped by identity (equal records that are not shared are compared, then skipped); only changed
    records are serialized. At N=10,000 this avoids dumping the whole status every cycle.
    """
    head_old = old.head_dict()
    head_new = new.head_dict()
    patch = _diff(head_old, head_new)
    patch.pop("instances", None)
    entries: dict[str, Any] = {}
    before = old.instances
    old_action, new_action = revision_action(old.revision_key), revision_action(new.revision_key)
    old_lists, new_lists = old.lister(), new.lister()
    same_lister = old.listing_key() == new.listing_key()
    for iid, record in new.instances.items():
        previous = before.get(iid)
        if (previous is record or previous == record) and old_action is new_action and same_lister:
            continue
        was = previous is not None and old_lists(previous)
        if not new_lists(record):
            if was:
                entries[iid] = None  # no longer listed (not started, or converged): counted in summary
            continue
        dumped = instance_wire(record, new_action)
        if not was:
            entries[iid] = dumped
        else:
            assert previous is not None
            sub = _diff(instance_wire(previous, old_action), dumped)
            if sub:
                entries[iid] = sub
    entries.update({iid: None for iid, rec in before.items() if iid not in new.instances and old_lists(rec)})
    if entries:
        patch["instances"] = entries
    return patch or None
