"""The transfer list's rows as data: columns, roles, filters, and what each row says.

Nothing here holds Qt state: the functions read a TransferItem (the engine's object, never
copied) and its journal records, and return text, tones and numbers for the model to hand out.
"""

from __future__ import annotations

from enum import IntEnum
from pathlib import Path

from PySide6.QtCore import Qt

from hoist.core.oci.annotations import TITLE
from hoist.core.oci.digest import short_digest
from hoist.core.progress import BlobEvent, BlobState
from hoist.core.sources.bundle import BUNDLE, BUNDLE_FILES
from hoist.core.transfer.model import IMAGE, Download, DownloadPart, Push, TransferState
from hoist.core.transfer.queue import TransferItem
from hoist.core.transfer.upload import BlobRecord
from hoist.core.units import format_size
from hoist.gui.add.planning import blob_label


class Column(IntEnum):
    NAME = 0
    TARGET = 1
    PROGRESS = 2
    SPEED = 3
    ETA = 4
    STATUS = 5


HEADERS = ("Name", "Target", "Progress", "Speed", "ETA", "Status")

ItemRole = Qt.ItemDataRole.UserRole + 1  # the TransferItem (top rows)
TransferIdRole = Qt.ItemDataRole.UserRole + 2  # the transfer's id (all rows)
StateRole = Qt.ItemDataRole.UserRole + 3  # TransferState / BlobState value
ProgressRole = Qt.ItemDataRole.UserRole + 4  # fraction 0..1 acknowledged, or None
BlobRole = Qt.ItemDataRole.UserRole + 5  # the blob's name (child rows)
ToneRole = Qt.ItemDataRole.UserRole + 6  # the progress bar's tone: one of theme.TONES
SentRole = Qt.ItemDataRole.UserRole + 7  # fraction 0..1 sent, while running (else None)

FILTERS = ("all", "active", "paused", "failed", "done")
FILTER_LABELS = {
    "all": "All",
    "active": "Active",
    "paused": "Paused",
    "failed": "Failed",
    "done": "Done",
}


def matches_filter(name: str, state: str) -> bool:
    """Whether a transfer in `state` shows under the status filter `name`."""
    if name == "all":
        return True
    if name == "active":
        return state in (TransferState.RUNNING, TransferState.QUEUED, TransferState.PAUSING)
    return state == name


def filter_label(name: str, counts: dict[str, int]) -> str:
    """The filter's label with how many transfers it holds: "Failed (2)"."""
    return f"{FILTER_LABELS[name]} ({counts.get(name, 0)})"


def transfer_destination(item: TransferItem) -> str:
    """The Target column: where a transfer's bytes go (a push's reference, a download's
    folder), or what a row standing for an unreadable journal entry is."""
    return "unreadable journal entry" if item.unreadable else item.transfer.goes_to


def capitalized(text: str) -> str:
    return text[:1].upper() + text[1:]


def transfer_icon_name(item: TransferItem) -> str:
    state = item.state
    if state == TransferState.RUNNING:
        waiting = any(e.state == BlobState.WAITING for e in item.blobs.values())
        moving = "downloading" if isinstance(item.transfer, Download) else "uploading"
        return "waiting" if waiting else moving
    return {
        TransferState.QUEUED: "waiting",
        TransferState.PAUSED: "paused",
        TransferState.DONE: "done",
        TransferState.FAILED: "failed",
    }.get(state, "paused")


def transfer_tone(item: TransferItem) -> str:
    """How a transfer's progress bar is coloured (see `theme.TONES`)."""
    state = item.state
    if state == TransferState.RUNNING:
        waiting = any(e.state == BlobState.WAITING for e in item.blobs.values())
        return "waiting" if waiting else "active"
    return {
        TransferState.QUEUED: "waiting",
        TransferState.DONE: "done",
        TransferState.FAILED: "failed",
    }.get(state, "paused")


def blob_tone(record: BlobRecord, event: BlobEvent | None, item: TransferItem) -> str:
    """A blob row's tone: its own while the transfer runs, else the transfer's."""
    if record.finished:
        return "done"
    state = blob_state(record, event)
    if state == BlobState.FAILED:
        return "failed"
    if not item.running:
        return transfer_tone(item)
    if state in (BlobState.WAITING, BlobState.PENDING):
        return "waiting"
    return "active"


def blob_acknowledged(record: BlobRecord, event: BlobEvent | None) -> int:
    if record.finished:
        return record.size
    live = event.acknowledged if event is not None else 0
    return max(record.acknowledged, live)


def blob_state(record: BlobRecord, event: BlobEvent | None) -> BlobState:
    if record.finished:
        return record.state
    return event.state if event is not None else record.state


def blob_status_text(record: BlobRecord, event: BlobEvent | None, item: TransferItem) -> str:
    """A blob row's state as a person reads it."""
    state = blob_state(record, event)
    if state == BlobState.EXISTS:
        return "already in the registry"
    if state == BlobState.MOUNTED:
        source = record.mounted_from
        return f"mounted from {source}" if source else "mounted"
    if state == BlobState.DONE:
        return "done"
    if not item.running:
        if item.state == TransferState.FAILED and event is not None and event.message:
            return f"failed: {event.message}"
        acked = blob_acknowledged(record, event)
        if acked and record.size:
            return f"paused at {100 * acked // record.size}%"
        return "waiting" if item.state == TransferState.QUEUED else "not started"
    if state == BlobState.WAITING and event is not None:
        reason = event.message or "waiting"
        return f"{reason}, retry in {int(event.retry_in or 0)} s"
    if state == BlobState.HASHING:
        return "checking the part already uploaded"
    if state == BlobState.FINALIZING:
        return "the registry is committing it"
    if state == BlobState.FAILED:
        return f"failed: {event.message}" if event is not None and event.message else "failed"
    if state == BlobState.PENDING:
        return "waiting"
    return state.value


def part_tone(part: DownloadPart, event: BlobEvent | None, item: TransferItem) -> str:
    """A download part's tone, as `blob_tone` for an upload's blob."""
    if part.finished:
        return "done"
    state = event.state if event is not None else part.state
    if state == BlobState.FAILED:
        return "failed"
    if not item.running:
        return transfer_tone(item)
    return "waiting" if state in (BlobState.WAITING, BlobState.PENDING) else "active"


def part_status_text(part: DownloadPart, event: BlobEvent | None, item: TransferItem) -> str:
    """A download part's state as a person reads it."""
    state = event.state if event is not None and item.running else part.state
    if state == BlobState.EXISTS:
        return "already downloaded"
    if state == BlobState.DONE:
        return "done"
    if not item.running:
        if part.received and part.size:
            return f"paused at {100 * part.received // part.size}%"
        return "waiting" if item.state == TransferState.QUEUED else "not started"
    if state == BlobState.WAITING and event is not None:
        return f"{event.message or 'waiting'}, retry in {int(event.retry_in or 0)} s"
    if state == BlobState.HASHING:
        return "checking the part already downloaded"
    if state == BlobState.PENDING:
        return "waiting"
    return state.value


def transfer_name(item: TransferItem) -> str:
    names = item.transfer.name.split(", ")
    if len(names) > 3:
        return f"{', '.join(names[:2])} and {len(names) - 2} more"
    return item.transfer.name


class BlobRow:
    """A push's child row: one blob, from its journal record and its last event."""

    moving = BlobState.UPLOADING

    def __init__(self, item: TransferItem, transfer: Push, row: int) -> None:
        self.item = item
        self.transfer = transfer
        self.row = row
        self.record = transfer.blobs[row]
        self.event = item.blobs.get(self.record.name)
        self.key = self.record.name
        self.state = blob_state(self.record, self.event)
        self.done = blob_acknowledged(self.record, self.event)
        self.sent = self.done if self.record.finished else max(self.done, item.blob_sent(self.key))
        self.size = self.record.size
        self.finished = self.record.finished

    def tone(self) -> str:
        return blob_tone(self.record, self.event, self.item)

    def status(self) -> str:
        return blob_status_text(self.record, self.event, self.item)

    def name(self) -> str:
        if is_bundle(self.record):
            return bundle_label(self.record)
        return blob_label(self.record, self.row, self.transfer)

    def target(self) -> str:
        return short_digest(self.record.digest)

    def tip(self) -> str:
        return self.record.digest or self.record.name


class PartRow:
    """A download's child row: one blob it fetches, as its journal record keeps it."""

    moving = BlobState.DOWNLOADING

    def __init__(self, item: TransferItem, transfer: Download, row: int) -> None:
        self.item = item
        self.transfer = transfer
        self.part = transfer.parts[row]
        self.event = item.blobs.get(self.part.name)
        self.key = self.part.name
        self.state = self.part.state
        self.done = self.part.received
        self.sent = self.done
        self.size = self.part.size
        self.finished = self.part.finished

    def tone(self) -> str:
        return part_tone(self.part, self.event, self.item)

    def status(self) -> str:
        return part_status_text(self.part, self.event, self.item)

    def name(self) -> str:
        return self.part.name

    def target(self) -> str:  # a split file's part: the file it joins
        return Path(self.part.file).name if self.part.kind == "split" else ""

    def tip(self) -> str:  # the file it becomes (a folder, not its hidden archive)
        if self.part.kind == "folder":
            return str(Path(self.transfer.destination).joinpath(self.part.name))
        return self.part.file


def child_row(item: TransferItem, row: int) -> BlobRow | PartRow | None:
    """The child row for a transfer's `row`-th blob (a push) or part (a download)."""
    transfer = item.transfer
    if isinstance(transfer, Download):
        return PartRow(item, transfer, row) if row < len(transfer.parts) else None
    return BlobRow(item, transfer, row) if row < len(transfer.blobs) else None


def child_names(item: TransferItem) -> list[str]:
    """The names of a transfer's blobs or parts, in row order (what grouping reads)."""
    transfer = item.transfer
    if isinstance(transfer, Download):
        return [part.name for part in transfer.parts]
    return [blob.name for blob in transfer.blobs]


def is_bundle(record: BlobRecord) -> bool:
    """A bundle of a folder's small files (`app.hoist.bundle`): its title names a folder (or,
    in the earlier form, the tar), not one file, so its row must not read as one file."""
    return record.annotations.get(BUNDLE) is not None


def bundle_label(record: BlobRecord) -> str:
    """ "48 small files of model/tokenizer/ in one blob"; the earlier form, titled by its tar:
    "48 small files in one blob (model/.hoist-bundle-0001.tar)"."""
    title = record.annotations.get(TITLE, record.name)
    count = record.annotations.get(BUNDLE_FILES, "")
    what = f"{int(count):,} small files" if count.isdigit() else "small files"
    if record.annotations.get(BUNDLE) == "tar":
        return f"{what} in one blob ({title})"
    return f"{what} of {title}/ in one blob"


def plural(count: int, noun: str) -> str:
    """ "1 file", "2,006 files"."""
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


def push_summary(item: TransferItem) -> tuple[str, str] | None:
    """(status, tooltip) of a finished push of several blobs: how many, and how many the
    registry already had, so a re-push of a folder says it sent only what changed
    ("Done: 2,006 files, 1,998 already in the registry"). None for other transfers."""
    transfer = item.transfer
    if not isinstance(transfer, Push) or item.state != TransferState.DONE:
        return None
    blobs = transfer.blobs
    if len(blobs) < 2:
        return None
    bundled = any(is_bundle(b) for b in blobs)
    noun = "blob" if transfer.kind == IMAGE or bundled else "file"
    count, there = transfer.already_there
    total = transfer.total
    status = f"Done: {plural(len(blobs), noun)}"
    tip = f"Done: {plural(len(blobs), noun)} ({format_size(total)})."
    if count:
        status += f", {count:,} already in the registry"
        sent = len(blobs) - count
        verb = "was" if sent == 1 else "were"
        tip += (
            f"\n{count:,} of them ({format_size(there)}) were already in the registry; "
            f"{plural(sent, noun)} ({format_size(total - there)}) {verb} sent."
        )
    return status, tip
