"""A transfer of many files shows its folders, not its files: child rows in groups.

Over `GROUP_ABOVE` child rows, a transfer's files are grouped by the folder they sit in under
the folder they share (`data/assets/deep/x.bin` → "data/assets/"); a file directly in that folder
keeps its own row, unless there are more than `GROUP_ABOVE` of those too (then they are one
group as well). A group's progress and state are its members' summed (`group_totals`), and its
members become Qt rows only when it is expanded (the model's fetchMore): a dataset of 10,000
files costs a handful of rows until someone looks inside.

Groups are built from the names alone, so they read the same for a push (blob titles) and a
download (its parts), and a journal written by an earlier Hoist needs nothing new.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import dataclass, field

from hoist.core.progress import BlobState
from hoist.core.transfer.model import Push
from hoist.core.transfer.queue import TransferItem
from hoist.core.units import format_size
from hoist.gui.transfers.rows import child_row, plural, transfer_tone

#: A transfer with more child rows than this shows them grouped by folder.
GROUP_ABOVE = 50

#: Member states that count as "already in the registry" (or already downloaded).
THERE = (BlobState.EXISTS, BlobState.MOUNTED)


@dataclass(eq=False)  # compared by identity: the model finds a group's row with list.index
class FileGroup:
    """Child rows shown as one: the files of one folder (or the loose files of a big one)."""

    label: str  # "data/assets/", as the group's row names it ("" for loose files)
    prefix: str  # what every member's name starts with (a member's row shows the rest)
    members: list[int]  # row numbers of the blobs (or parts) in the transfer
    key: int = 0  # the model's internal id for the member rows
    fetched: int = 0  # how many member rows the model has made (0 until expanded)


Entry = FileGroup | int  # a group, or one blob's (part's) row number


def common_folder(names: Sequence[str]) -> str:
    """The folder every name lies in, with its trailing slash ("data/"), or "" if none."""
    if not names:
        return ""
    # Every name shares the folders that the first and last in sorted order share.
    first, last = min(names), max(names)
    shared = posixpath.dirname(first) if first == last else posixpath.commonpath([first, last])
    return f"{shared}/" if shared else ""


def group_children(names: Sequence[str], above: int = GROUP_ABOVE) -> list[Entry]:
    """The child rows of a transfer whose blobs (parts) have these names: one per name when
    there are `above` or fewer, else one per folder under their common folder and one per
    loose file (in the order their first member comes)."""
    if len(names) <= above:
        return list(range(len(names)))
    root = common_folder(names)
    folders: dict[str, list[int]] = {}
    loose: list[int] = []
    for row, name in enumerate(names):
        head, slash, _rest = name[len(root) :].partition("/")
        if slash:
            folders.setdefault(head, []).append(row)
        else:
            loose.append(row)
    groups = {
        members[0]: FileGroup(f"{root}{head}/", f"{root}{head}/", members)
        for head, members in folders.items()
        if len(members) > 1
    }
    single = {members[0] for members in folders.values() if len(members) == 1}
    if len(loose) > above:
        label = f"{root} (top level)" if root else ""  # files from several places
        groups[loose[0]] = FileGroup(label, root, loose)
        loose = []
    rows = sorted([*groups, *loose, *single])
    return [groups.get(row, row) for row in rows]


@dataclass
class GroupTotals:
    """A group's members summed: what its row shows."""

    count: int = 0
    size: int = 0
    done: int = 0  # bytes acknowledged (or received)
    sent: int = 0  # bytes handed to the network, in flight included
    finished: int = 0
    there: int = 0  # finished because the registry (or the folder) already had them
    failed: int = 0
    moving: int = 0
    waiting: int = 0
    rate: float = 0.0
    moving_state: BlobState = field(default=BlobState.UPLOADING)

    @property
    def all_finished(self) -> bool:
        return self.finished == self.count


def group_totals(item: TransferItem, group: FileGroup) -> GroupTotals:
    """Sum a group's members (the model caches it between repaints)."""
    if isinstance(item.transfer, Push):
        return push_group_totals(item, item.transfer, group)
    totals = GroupTotals(count=len(group.members))
    for row in group.members:
        child = child_row(item, row)
        if child is None:
            continue
        totals.moving_state = child.moving
        totals.size += child.size
        totals.done += child.done
        totals.sent += child.sent
        if child.finished:
            totals.finished += 1
            totals.there += child.state in THERE
            continue
        event = child.event
        state = event.state if event is not None and item.running else child.state
        if state == BlobState.FAILED:
            totals.failed += 1
        elif state == BlobState.WAITING:
            totals.waiting += 1
        elif state == child.moving and event is not None:
            totals.moving += 1
            totals.rate += event.rate or 0.0
    return totals


def group_name(group: FileGroup) -> str:
    """ "data/assets/ — 1,998 files", or "2,000 files" for loose files from several places."""
    count = plural(len(group.members), "file")
    return f"{group.label} — {count}" if group.label else count


def group_tip(group: FileGroup, totals: GroupTotals) -> str:
    """ "1,998 files (12.3 MiB) in data/assets/"."""
    where = f" in {group.prefix}" if group.prefix else ""
    return f"{plural(totals.count, 'file')} ({format_size(totals.size)}){where}"


def group_status(totals: GroupTotals, download: bool) -> str:
    """ "Done", "Done; 1,990 of 1,998 already in the registry", "1,200 of 1,998 done; 3 failed"."""
    where = "already downloaded" if download else "already in the registry"
    if totals.all_finished:
        if totals.there:
            return f"Done; {totals.there:,} of {totals.count:,} {where}"
        return "Done"
    parts = [f"{totals.finished:,} of {totals.count:,} done"]
    if totals.there:
        parts.append(f"{totals.there:,} {where}")
    if totals.failed:
        parts.append(f"{totals.failed:,} failed")
    if totals.waiting:
        parts.append(f"{totals.waiting:,} waiting to retry")
    return "; ".join(parts)


def group_tone(totals: GroupTotals, item: TransferItem) -> str:
    """A group's bar colour: failed if a member failed, done when all are, else as it runs."""
    if totals.failed:
        return "failed"
    if totals.all_finished:
        return "done"
    if not item.running:
        return transfer_tone(item)
    return "active" if totals.moving else "waiting"


def group_state(totals: GroupTotals) -> BlobState:
    """The state a group reports in StateRole (as a blob row would)."""
    if totals.all_finished:
        return BlobState.DONE
    if totals.failed:
        return BlobState.FAILED
    return totals.moving_state if totals.moving else BlobState.PENDING


def push_group_totals(item: TransferItem, transfer: Push, group: FileGroup) -> GroupTotals:
    """`group_totals` for a push, read from the blob records without making a row object for
    each: the same sums as BlobRow's (`blob_state`, `blob_acknowledged`, `blob_sent`), at a
    fraction of the cost for a group of thousands of files."""
    totals = GroupTotals(count=len(group.members))
    blobs = transfer.blobs
    events = item.blobs
    for row in group.members:
        if row >= len(blobs):
            continue
        record = blobs[row]
        size = record.size
        totals.size += size
        if record.finished:
            totals.done += size
            totals.sent += size
            totals.finished += 1
            totals.there += record.state in THERE
            continue
        event = events.get(record.name)
        if event is None:
            totals.done += record.acknowledged
            totals.sent += record.acknowledged
            if record.state == BlobState.FAILED:
                totals.failed += 1
            continue
        acknowledged = max(record.acknowledged, event.acknowledged)
        totals.done += acknowledged
        totals.sent += max(acknowledged, item.blob_sent(record.name))
        state = event.state  # as `blob_state` reads an unfinished blob
        if state == BlobState.FAILED:
            totals.failed += 1
        elif state == BlobState.WAITING:
            totals.waiting += 1
        elif state == BlobState.UPLOADING:
            totals.moving += 1
            totals.rate += event.rate or 0.0
    return totals
