"""The transfer queue: many transfers, a few at a time, each pausable, resumable, cancellable.

Pushes and downloads share it: a Download is run by `hoist.core.transfer.download.DownloadRun`,
shown, paused, resumed and journaled like a Push.

Items are plain objects holding a Transfer and what was last heard of each of its blobs; the
queue runs them (at most `max_active` at once), shares one RegistryClient per registry (so
tokens and connections are reused) and one bandwidth limiter, and tells listeners when an item
was added, changed or removed. It knows nothing of Qt: the window's model listens and throttles
its repaints (qutebrowser's downloads: item → manager → model → view).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from hoist.core.bandwidth import BandwidthLimiter, all_limits
from hoist.core.errors import (
    HoistError,
    JournalUnwritable,
    SourceError,
    TransferBusy,
    TransferPaused,
)
from hoist.core.oci.reference import Reference
from hoist.core.progress import BlobEvent, BlobState, Event, RateEstimator, TransferEvent
from hoist.core.registry.auth import Credentials
from hoist.core.registry.client import RegistryClient
from hoist.core.registry.connect import client_for_host
from hoist.core.transfer.journal import TransferClaim, TransferJournal
from hoist.core.transfer.model import (
    ARTIFACT,
    Download,
    Push,
    Transfer,
    TransferState,
    journal_transfers,
    load_transfer,
    state_at_rest,
)
from hoist.core.transfer.push import restart_changed_blobs
from hoist.core.transfer.runs import discard_work, open_run
from hoist.core.transfer.upload import UploadSettings
from hoist.core.units import format_size

log = logging.getLogger(__name__)

#: How long Cancel lets the stream in progress end cleanly (its answer is awaited at most
#: 10 s: filebody.ENDED_STREAM_ANSWER_TIMEOUT) before it stops the transfer at once.
CANCEL_PAUSE_TIMEOUT = 12.0
#: ("added" | "changed" | "moved" | "removed", item)
Listener = Callable[[str, "TransferItem"], None]


@dataclass
class TransferItem:
    """One transfer as the queue (and the window) sees it."""

    transfer: Transfer
    blobs: dict[str, BlobEvent] = field(default_factory=dict)
    message: str = ""
    retry_in: float | None = None
    finalizing_since: float | None = None
    task: asyncio.Task[None] | None = None
    pause_event: asyncio.Event = field(default_factory=asyncio.Event)
    save_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    saves_asked: int = 0
    saves_done: int = 0
    rate_estimator: RateEstimator = field(default_factory=RateEstimator)
    cancelling: asyncio.Future[None] | None = None
    claim: TransferClaim | None = None  # held while this process runs or cancels it
    owner: int | None = None  # the pid of another Hoist found working on it: left alone
    interrupted: bool = False  # its Hoist died while it ran: resumable
    unreadable: bool = False  # a journal entry that is no transfer: shown so it can be removed
    #: per blob, this run: (bytes acknowledged, bytes sent) at its last acknowledgement
    _acked_at: dict[str, tuple[int, int]] = field(default_factory=dict, init=False, repr=False)
    #: per blob, this run: bytes sent (its events' `sent`, which each run counts from 0)
    _sent_this_run: dict[str, int] = field(default_factory=dict, init=False, repr=False)
    #: The typed error the last run failed with, for the window to act on (a ReplaceRefused
    #: download: ask whether to replace the files it names, then `replace_and_retry`).
    failure: HoistError | None = None
    #: This transfer's own cap (bytes/s; 0: none), on top of the window's (as download
    #: managers allow); kept while the window runs, not in the journal.
    limiter: BandwidthLimiter = field(default_factory=BandwidthLimiter)
    #: Why progress last moved backwards (a blob started again), for the status line.
    setback: str = ""

    @property
    def id(self) -> str:
        return self.transfer.id

    @property
    def state(self) -> TransferState:
        """The transfer's state, except that a pause asked of a running transfer reads
        "pausing" until its run has stopped and written the journal (the run marks the
        transfer paused just before that last write)."""
        state = self.transfer.state
        pausable = (TransferState.RUNNING, TransferState.PAUSING, TransferState.PAUSED)
        if state in pausable and self.pause_event.is_set() and self.running:
            return TransferState.PAUSING
        return state

    @property
    def total(self) -> int:
        return self.transfer.total

    @property
    def acknowledged(self) -> int:
        if isinstance(self.transfer, Download):
            # Its parts follow its events as they come (a re-hash may lower them).
            return self.transfer.acknowledged
        live = {name: e.acknowledged for name, e in self.blobs.items()}
        return sum(
            b.size if b.finished else max(b.acknowledged, live.get(b.name, 0))
            for b in self.transfer.blobs
        )

    def blob_sent(self, name: str) -> int:
        """How far a blob's bytes have gone out: what the registry acknowledged plus what
        was sent since (the chunk in flight), as its events tell while it runs. Never less
        than the acknowledged count, never more than the blob."""
        event = self.blobs.get(name)
        mark = self._acked_at.get(name)
        if event is None or mark is None or not self.running:
            return event.acknowledged if event is not None else 0
        in_flight = max(0, event.sent - mark[1])
        return min(event.total, event.acknowledged + in_flight)

    @property
    def sent(self) -> int:
        """Bytes handed to the network so far, counting each byte once: `acknowledged` plus
        the chunks in flight (equal to it when nothing runs)."""
        if isinstance(self.transfer, Download):
            return self.acknowledged
        return sum(
            b.size if b.finished else max(b.acknowledged, self.blob_sent(b.name))
            for b in self.transfer.blobs
        )

    def run_started(self) -> None:
        """A run begins: speed and bytes in flight are measured afresh (a resume must not
        count the part sent before the pause as just sent)."""
        self.rate_estimator.reset()
        self._acked_at.clear()
        self._sent_this_run.clear()

    def observe(self, event: BlobEvent) -> None:
        """Take one of a blob's events: its state, its bytes in flight, the transfer's rate
        (a rolling window of bytes sent in this run)."""
        mark = self._acked_at.get(event.blob)
        if mark is None or event.sent < mark[1]:  # the run's first word: all it sent is new
            self._acked_at[event.blob] = (event.acknowledged, 0)
        elif event.acknowledged != mark[0]:  # acknowledged up to here: nothing in flight
            self._acked_at[event.blob] = (event.acknowledged, event.sent)
        self.blobs[event.blob] = event
        self._sent_this_run[event.blob] = event.sent
        sent = sum(self._sent_this_run.values())
        if sent:  # from the first byte: a re-hash before it is not a slow link
            self.rate_estimator.add(sent)

    @property
    def rate(self) -> float | None:
        return self.rate_estimator.rate()

    @property
    def eta(self) -> float | None:
        return self.rate_estimator.eta(self.total - self.sent)

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    def status_text(self) -> str:
        """The state column: "uploading", "waiting for network, retry in 8 s", "failed: ..."."""
        state = self.state
        if state == TransferState.PAUSED and self.owner:
            return f"being uploaded by another Hoist (pid {self.owner}); left alone"
        if state == TransferState.PAUSED and self.interrupted:
            return "interrupted"
        if state == TransferState.FAILED:
            return f"failed: {self.transfer.error}" if self.transfer.error else "failed"
        if state == TransferState.PAUSING:
            return "pausing…"
        if state == TransferState.DONE and isinstance(self.transfer, Push):
            count, size = self.transfer.already_there
            if count:
                blobs = len(self.transfer.blobs)
                return f"done; {count} of {blobs} ({format_size(size)}) already in the registry"
        if state != TransferState.RUNNING:
            return state.value
        waiting = [e for e in self.blobs.values() if e.state == BlobState.WAITING]
        if waiting:
            e = waiting[0]
            reason = e.message or "waiting"
            return f"{reason}, retry in {int(e.retry_in or 0)} s"
        hashing = any(e.state == BlobState.HASHING for e in self.blobs.values())
        if isinstance(self.transfer, Download):
            if hashing:
                return "checking the part already downloaded"
            return "reading the manifest" if not self.transfer.parts else "downloading"
        if hashing:
            return "checking the part already uploaded"
        if (
            self.blobs
            and all(
                e.state
                in (BlobState.FINALIZING, BlobState.DONE, BlobState.EXISTS, BlobState.MOUNTED)
                for e in self.blobs.values()
            )
            and any(e.state == BlobState.FINALIZING for e in self.blobs.values())
        ):
            return "finalizing"
        resent = sum(e.resent for e in self.blobs.values())
        if not resent:
            return "uploading"
        why = f"; {self.setback}" if self.setback else ""
        return f"uploading (re-sent {format_size(resent)}{why})"


class TransferQueue:
    """Runs transfers from a journal.

    Args:
        journal: where transfers are kept across restarts.
        settings: makes a transfer's UploadSettings (chunk size, retry policy, the host's
            profile: `hoist.core.transfer.settings.transfer_settings`).
        credentials: looks up credentials for a registry host; called when a client is made, so
            it must not block (the window passes a cache it fills in worker threads).
        max_active: transfers uploading at once.
        client_factory: makes the client for a transfer's registry (the window's registry
            settings: TLS choices, credentials); by default a plain one from `credentials`.
        journal_unwritable: asked when a transfer's journal can't be written (a full disk):
            True runs it on without resume, False (or no one to ask) fails it with the sentence.
        window_words: a failure is written in the window's words (`HoistError.sentence`).
    """

    def __init__(
        self,
        journal: TransferJournal,
        *,
        settings: Callable[[Transfer], UploadSettings] = lambda _transfer: UploadSettings(),
        credentials: Callable[[str], Credentials | None] | None = None,
        max_active: int = 2,
        limiter: BandwidthLimiter | None = None,
        client_factory: Callable[[Transfer], RegistryClient] | None = None,
        journal_unwritable: Callable[[TransferItem, JournalUnwritable], Awaitable[bool]]
        | None = None,
        window_words: bool = False,
    ) -> None:
        self.journal_unwritable = journal_unwritable
        self.journal = journal
        self.window_words = window_words
        self.settings_factory = settings
        self.credentials = credentials
        self._max_active = max_active
        self.limiter = limiter or BandwidthLimiter()
        self.client_factory = client_factory
        self.items: list[TransferItem] = []
        self.listeners: list[Listener] = []
        self._clients: dict[tuple[str, bool | None], RegistryClient] = {}
        self._closing = False
        self._writes: set[asyncio.Task[None]] = set()

    # -- listeners ----------------------------------------------------------------------------

    def _notify(self, kind: str, item: TransferItem) -> None:
        for listener in list(self.listeners):
            listener(kind, item)

    def get(self, transfer_id: str) -> TransferItem:
        for item in self.items:
            if item.id == transfer_id:
                return item
        raise KeyError(transfer_id)

    # -- settings -----------------------------------------------------------------------------

    @property
    def max_active(self) -> int:
        return self._max_active

    @max_active.setter
    def max_active(self, value: int) -> None:
        self._max_active = max(1, value)
        self._schedule()

    def set_rate_limit(self, transfer_id: str, rate: int) -> None:
        """Give one transfer its own cap (bytes/s, 0: none); it applies to the next block."""
        item = self.get(transfer_id)
        item.limiter.rate = rate
        self._notify("changed", item)

    # -- order --------------------------------------------------------------------------------

    def move(self, transfer_id: str, where: str) -> None:
        """Reorder: `where` is "up", "down" or "top". Queued transfers start in list order."""
        item = self.get(transfer_id)
        index = self.items.index(item)
        target = {"up": index - 1, "down": index + 1, "top": 0}[where]
        target = max(0, min(target, len(self.items) - 1))
        if target == index:
            return
        self.items.insert(target, self.items.pop(index))
        self._notify("moved", item)

    # -- adding -------------------------------------------------------------------------------

    def add(self, transfer: Transfer, *, start: bool = True) -> TransferItem:
        item = TransferItem(transfer)
        if not start and transfer.state in (TransferState.QUEUED, TransferState.RUNNING):
            transfer.state = TransferState.PAUSED
        elif start and transfer.state != TransferState.DONE:
            transfer.state = TransferState.QUEUED
        self.items.append(item)
        self._save(item)
        self._notify("added", item)
        self._schedule()
        return item

    def load_journal(self, *, resume: bool = False) -> list[str]:
        """Add every transfer of an earlier run: paused, or queued when `resume`.

        Returns the sentences of journal entries that could not be read (never hidden, and
        never in the way of the others). A transfer another live Hoist owns is added paused
        and left alone; one whose Hoist died while it ran is marked interrupted.
        """
        problems = []
        known = {item.id for item in self.items}
        for transfer_id, transfer in journal_transfers(self.journal):
            if transfer_id in known:
                continue
            if isinstance(transfer, HoistError):
                problems.append(transfer.sentence(window=self.window_words))
                self.items.append(self._unreadable_item(transfer_id, transfer))
                self._notify("added", self.items[-1])
                continue
            transfer.state = state_at_rest(transfer.state)
            item = TransferItem(transfer)
            owner = self.journal.owner(transfer_id)
            if owner is not None and owner != os.getpid():
                item.owner = owner
                if transfer.state != TransferState.DONE:
                    transfer.state = TransferState.PAUSED
            elif transfer.state in (TransferState.RUNNING, TransferState.QUEUED):
                item.interrupted = transfer.state == TransferState.RUNNING
                transfer.state = TransferState.QUEUED if resume else TransferState.PAUSED
            self.items.append(item)
            self._notify("added", item)
        self._schedule()
        return problems

    def _unreadable_item(self, transfer_id: str, error: HoistError) -> TransferItem:
        """A failed row standing for a journal entry that can't be read, so that the window
        can show it and Remove (or Cancel) can delete it; it never runs, and its file is never
        written over."""
        transfer = Push(
            id=transfer_id,
            target=Reference("", ""),
            kind=ARTIFACT,
            blobs=[],
            sources=[str(self.journal.path(transfer_id))],
            state=TransferState.FAILED,
            error=error.sentence(),
        )
        return TransferItem(transfer, unreadable=True)

    # -- actions ------------------------------------------------------------------------------

    def pause(self, transfer_id: str, *, now: bool = False) -> None:
        """End the upload in progress cleanly (a streamed chunk at once, a sized one at its
        end), or stop at once with `now` (the chunk in flight is cut). A running transfer reads
        "pausing" at once, and "paused" when its run has stopped and the journal is written; a
        transfer waiting its turn is paused at once. The state is kept either way."""
        item = self.get(transfer_id)
        if item.running:
            item.pause_event.set()
            if item.transfer.state in (TransferState.RUNNING, TransferState.QUEUED):
                item.transfer.state = TransferState.PAUSING
            if now and item.task is not None:
                item.task.cancel()
        elif item.state == TransferState.QUEUED:
            item.transfer.state = TransferState.PAUSED
            self._save(item)
        self._notify("changed", item)

    def resume(self, transfer_id: str) -> None:
        item = self.get(transfer_id)
        if item.unreadable:
            return
        if item.state in (TransferState.PAUSED, TransferState.FAILED):
            item.transfer.state = TransferState.QUEUED
            item.transfer.error = ""
            item.interrupted = False
            item.failure = None
            item.pause_event.clear()
            self._save(item)
            self._notify("changed", item)
            self._schedule()

    def retry(self, transfer_id: str) -> list[str]:
        """Resume a failed transfer; blobs whose file changed start again with the new content
        (what the FileChanged sentence promises). Returns the blobs restarted."""
        item = self.get(transfer_id)
        restarted: list[str] = []
        if item.state == TransferState.FAILED and not item.unreadable:
            try:
                restarted = restart_changed_blobs(item.transfer)
            except HoistError as exc:
                item.transfer.error = exc.sentence(window=self.window_words)
                self._save(item)
                self._notify("changed", item)
                return []
        self.resume(transfer_id)
        return restarted

    def replace_and_retry(self, transfer_id: str) -> None:
        """Run a failed download again, now allowed to replace the files already in its
        folder (the user said yes to the ReplaceRefused question)."""
        item = self.get(transfer_id)
        if isinstance(item.transfer, Download) and item.state == TransferState.FAILED:
            item.transfer.overwrite = True
            self.resume(transfer_id)

    def pause_all(self) -> None:
        for item in self.items:
            if item.state in (TransferState.RUNNING, TransferState.QUEUED):
                self.pause(item.id)

    def resume_all(self) -> None:
        for item in self.items:
            if item.state == TransferState.PAUSED:
                self.resume(item.id)

    async def cancel(self, transfer_id: str) -> None:
        """Stop the transfer, DELETE its open upload sessions (or a download's partial files),
        and forget it. Cancelling again while that runs waits for the same cancel.

        Raises SourceError when some of a download's files could not be deleted (the transfer
        is forgotten all the same).
        """
        item = self.get(transfer_id)
        if item.cancelling is None:
            item.cancelling = asyncio.ensure_future(self._cancel(item))
        await asyncio.shield(item.cancelling)

    async def _cancel(self, item: TransferItem) -> None:
        transfer_id = item.id
        if item.unreadable:  # nothing to discard but the entry itself
            self.remove(transfer_id)
            await self.flush()
            return
        task = item.task
        if task is not None and not task.done():
            # Pause first: the stream in progress ends cleanly and its answer brings the
            # session's newest Location, the one its DELETE needs (distribution 2.x refuses a
            # stale one, and a cut chunk leaves only stale ones). Then stop at once.
            item.pause_event.set()
            await asyncio.wait({task}, timeout=CANCEL_PAUSE_TIMEOUT)
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        # Another live Hoist's upload sessions are never deleted under it (TransferBusy).
        claim = await asyncio.to_thread(self.journal.claim, transfer_id)
        try:
            discarded = await discard_work(item.transfer, self._client(item.transfer))
            if discarded.sessions:
                log.info("cancel %s: %s", transfer_id, "; ".join(discarded.sessions))
            item.transfer.state = TransferState.CANCELLED
            self.remove(transfer_id)
            await self.flush()  # the entry goes while the claim is still held
        finally:
            claim.release()
        if discarded.files:
            raise SourceError(
                f"cancelled, but {'; '.join(discarded.files)}",
                hint="Delete those files yourself once the disk allows it",
            )

    def remove(self, transfer_id: str) -> None:
        """Forget a transfer that is not running (its journal entry goes too)."""
        item = self.get(transfer_id)
        if item.running:
            raise HoistError("pause or cancel the transfer before removing it")
        self.items.remove(item)
        item.saves_asked += 1

        async def forget() -> None:
            async with item.save_lock:  # after any write in flight, and no write after it
                item.saves_done = item.saves_asked = 1 << 62
                await asyncio.to_thread(self.journal.remove, transfer_id)

        task = asyncio.get_running_loop().create_task(forget())
        self._writes.add(task)
        task.add_done_callback(self._write_done)
        self._notify("removed", item)

    # -- running ------------------------------------------------------------------------------

    def _save(self, item: TransferItem) -> None:
        """Write the item's journal entry in a worker thread (an fsync can take long enough to
        stall the window). Writes of one item are ordered, and a write overtaken by a newer one
        is skipped. While the transfer runs, its TransferRun checkpoints it instead."""
        if item.unreadable:
            return
        item.saves_asked += 1
        number = item.saves_asked
        doc = item.transfer.to_json()

        async def write() -> None:
            async with item.save_lock:
                if number < item.saves_done:  # overtaken by a newer write, or removed
                    return
                await asyncio.to_thread(self._save_unless_owned_elsewhere, item.id, doc)
                item.saves_done = number

        task = asyncio.get_running_loop().create_task(write())
        self._writes.add(task)
        task.add_done_callback(self._write_done)

    def _save_unless_owned_elsewhere(self, transfer_id: str, doc: dict[str, object]) -> None:
        """Write an entry, unless another live Hoist owns it: what that one writes is newer
        than this queue's copy."""
        owner = self.journal.owner(transfer_id)
        if owner is None or owner == os.getpid():
            self.journal.save(transfer_id, doc)

    def _write_done(self, task: asyncio.Task[None]) -> None:
        self._writes.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("journal write failed: %s", task.exception())

    async def flush(self) -> None:
        """Wait for pending journal writes (before quitting)."""
        while self._writes:
            # asyncio.wait, not gather: a flush that is itself cancelled (a run cancelled
            # while it waits) must not cancel the writes; their threads would write anyway,
            # after a cancel had removed the entry.
            await asyncio.wait(list(self._writes))

    def _client(self, transfer: Transfer) -> RegistryClient:
        key = (transfer.reference.api_host, transfer.plain_http)
        client = self._clients.get(key)
        if client is None:
            if self.client_factory is not None:
                client = self.client_factory(transfer)
            else:
                registry = transfer.reference.registry
                client = client_for_host(
                    registry,
                    plain_http=transfer.plain_http,
                    credentials=self.credentials(registry) if self.credentials else None,
                )
            self._clients[key] = client
        return client

    async def forget_clients(self, host: str | None = None) -> None:
        """Drop cached clients (after a login or a change of TLS settings): the next transfer to
        that registry connects anew. Clients in use by a running transfer are kept until the
        transfer ends."""
        busy = {id(self._client(item.transfer)) for item in self.items if item.running}
        for key, client in list(self._clients.items()):
            if (host is None or key[0] == host) and id(client) not in busy:
                del self._clients[key]
                await client.aclose()

    def _schedule(self) -> None:
        if self._closing:
            return
        active = sum(1 for item in self.items if item.running)
        for item in self.items:
            if active >= self._max_active:
                break
            if item.state == TransferState.QUEUED and not item.running:
                item.pause_event.clear()  # set before a resume; a pause from now on holds
                item.task = asyncio.get_running_loop().create_task(self._run(item))
                active += 1

    def _on_event(self, item: TransferItem, event: Event) -> None:
        if isinstance(event, BlobEvent):
            before = item.blobs.get(event.blob)
            if before is not None and event.acknowledged < before.acknowledged:
                item.setback = event.message or "the registry lost part of the upload"
            item.observe(event)
            item.message = event.message or item.message
        elif isinstance(event, TransferEvent):
            item.message = event.message
        self._notify("changed", item)

    async def _claim(self, item: TransferItem) -> bool:
        """Own the item's transfer before running it, and start from what the journal holds
        now: another Hoist may have moved it on (a newer upload Location) since it was loaded.
        False, with the item paused and saying why, when another live Hoist owns it."""
        # This queue's own writes of the item go first (a resume's, a replace_and_retry's):
        # the journal must not hand back an older copy than the one in memory.
        await self.flush()
        try:
            item.claim = await asyncio.to_thread(self.journal.claim, item.id)
        except TransferBusy as exc:
            item.owner = exc.pid
            item.transfer.state = TransferState.PAUSED
            return False
        item.owner = None
        try:
            fresh = await asyncio.to_thread(load_transfer, self.journal, item.id)
        except HoistError:
            return True  # not written yet (just added) or unreadable: this copy is the truth
        if fresh.to_json() | {"state": ""} != item.transfer.to_json() | {"state": ""}:
            fresh.state = item.transfer.state
            vars(item.transfer).update(vars(fresh))
        return True

    async def _run(self, item: TransferItem) -> None:
        item.run_started()
        if not await self._claim(item):
            item.task = None
            self._notify("changed", item)
            self._schedule()
            return
        settings = self.settings_factory(item.transfer)
        if isinstance(item.transfer, Download):  # the upload caps don't apply; its own does
            settings.throttle = all_limits(item.limiter.take)
        else:
            settings.throttle = all_limits(self.limiter.take, item.limiter.take, settings.throttle)
        run = open_run(
            item.transfer,
            self._client(item.transfer),
            journal=self.journal,
            settings=settings,
            on_event=lambda e: self._on_event(item, e),
            pause=item.pause_event,
        )
        ask = self.journal_unwritable
        if ask is not None:

            async def go_on(exc: JournalUnwritable) -> bool:
                return await ask(item, exc)

            run.on_unwritable = go_on
        try:
            await run.run()
        except TransferPaused:
            pass
        except asyncio.CancelledError:
            pass
        except HoistError as exc:
            item.failure = exc
            # The run records its failure on the transfer; never leave one looking alive.
            if item.transfer.state in (
                TransferState.RUNNING, TransferState.QUEUED, TransferState.PAUSING
            ):  # fmt: skip
                item.transfer.state = TransferState.FAILED
            if item.transfer.state == TransferState.FAILED:
                item.transfer.error = exc.sentence(window=self.window_words)
                self._save(item)
        except Exception as exc:  # a bug: show it on the transfer, never lose it
            log.exception("transfer %s crashed", item.id)
            item.transfer.state = TransferState.FAILED
            item.transfer.error = f"internal error: {exc!r}"
            self._save(item)
        finally:
            if item.claim is not None:
                item.claim.release()
                item.claim = None
            item.task = None
            self._notify("changed", item)
            self._schedule()

    async def aclose(self, *, grace: float = 0.0) -> None:
        """Stop everything and close clients; the journal keeps where each stands.

        With `grace`, every running transfer is first paused as Pause does (the stream in
        flight ends, the registry's answer is journaled) and given up to `grace` seconds
        for it; whatever still runs then is stopped at once. Without it, everything stops
        at once (what is in flight may have to be sent again).

        Transfers that were uploading or waiting their turn are written back as queued (they
        were interrupted, not paused), so "resume on start-up" resumes them next time; a
        transfer the user paused stays paused.
        """
        self._closing = True
        interrupted = [
            item
            for item in self.items
            if item.state in (TransferState.RUNNING, TransferState.QUEUED)
        ]
        tasks = [item.task for item in self.items if item.task is not None]
        if grace > 0 and tasks:
            for item in self.items:
                if item.running:
                    self.pause(item.id)
            await asyncio.wait(tasks, timeout=grace)
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        for item in interrupted:
            if item.state in (TransferState.PAUSED, TransferState.RUNNING, TransferState.QUEUED):
                item.transfer.state = TransferState.QUEUED
                self._save(item)
        await self.flush()
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()

    def counts(self) -> dict[str, int]:
        """For the status filter: all, active, paused, failed, done."""
        out = {"all": len(self.items), "active": 0, "paused": 0, "failed": 0, "done": 0}
        for item in self.items:
            state = item.state
            if state in (TransferState.RUNNING, TransferState.QUEUED, TransferState.PAUSING):
                out["active"] += 1
            elif state == TransferState.PAUSED:
                out["paused"] += 1
            elif state == TransferState.FAILED:
                out["failed"] += 1
            elif state == TransferState.DONE:
                out["done"] += 1
        return out


__all__ = ["TransferItem", "TransferQueue"]
