"""A repository's tags as a Qt table (tag, size, created, digest) and its sort proxy.

`TagModel` fills size and created date only for rows the view says are visible
(`set_visible_rows`): each is a HEAD (tag → digest) and, once per digest, an `inspect()`,
at most `concurrency` at once and cached by digest, so 3,000 tags of one image cost one
inspect. Until then the cells say "…" and "loading". Updates are batched on a timer.
Distribution 2.8 ignores `n` on `tags/list` and sends every tag in one page (the model then
simply has no second page).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QObject,
    Qt,
    QTimer,
    Signal,
)

from hoist.core.errors import HoistError
from hoist.core.oci.digest import short_digest
from hoist.core.registry.browse import ManifestInfo, ManifestKind, inspect
from hoist.core.registry.client import RegistryClient
from hoist.core.registry.deletion import resolve_digest
from hoist.core.registry.listing import tag_pages
from hoist.core.units import format_size
from hoist.gui.browse.models import (
    DETAIL_CONCURRENCY,
    FAILED,
    LOADING_DATE,
    LOADING_SIZE,
    PAGE_SIZE,
    REFRESH_MS,
    FetchedByPages,
    NameFilterProxy,
    NameRole,
    PageFeeder,
    SortRole,
    counted,
    created_sort_key,
    format_created,
    size_text,
)
from hoist.gui.widgets.item_models import ROOT, Index, column_heading, read_only_flags
from hoist.gui.widgets.tasks import report_task_failure

log = logging.getLogger(__name__)


# -- tags -----------------------------------------------------------------------------------


class TagColumn(IntEnum):
    TAG = 0
    SIZE = 1
    CREATED = 2
    DIGEST = 3


TAG_HEADERS = ("Tag", "Size", "Created", "Digest")


class DetailState(StrEnum):
    UNKNOWN = "unknown"  # not asked for yet (not visible), or queued
    LOADING = "loading"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class ManifestSummary:
    """What a tag's row shows of its manifest; one per digest, shared by the tags on it."""

    digest: str
    size: int
    created: str | None
    kind: ManifestKind

    @classmethod
    def of(cls, info: ManifestInfo) -> ManifestSummary:
        return cls(info.digest, info.total_size, info.created, info.kind)


@dataclass
class TagDetail:
    state: DetailState = DetailState.UNKNOWN
    digest: str | None = None
    summary: ManifestSummary | None = None
    error: str = ""


@dataclass
class _Pool:
    """The detail workers of one repository (a new pool when the model restarts)."""

    client: RegistryClient
    repository: str
    pending: dict[str, None] = field(default_factory=dict)  # ordered set of tags
    workers: set[asyncio.Task[None]] = field(default_factory=set)
    inflight: dict[str, asyncio.Task[ManifestSummary]] = field(default_factory=dict)
    closed: bool = False


class TagModel(FetchedByPages, QAbstractTableModel):
    """A repository's tags (tag, size, created, digest), paged like `RepositoryModel`.

    Size and date are read only for rows the view reports visible (`set_visible_rows`), or
    for all of them on `load_all()` (sorting by date needs every date). Summaries are cached
    by digest for the life of the registry connection (a digest's content never changes).

    Signals:
        loadingChanged(bool): a page of tags is (no longer) on its way.
        failed(str): the tag list could not be read (the error's sentence).
        detailsChanged(): sizes or dates of some rows arrived (a few times a second at most).
    """

    loadingChanged = Signal(bool)
    failed = Signal(str)
    detailsChanged = Signal()

    def __init__(
        self,
        parent: QObject | None = None,
        *,
        page_size: int = PAGE_SIZE,
        concurrency: int = DETAIL_CONCURRENCY,
        refresh_ms: int = REFRESH_MS,
    ) -> None:
        super().__init__(parent)
        self.page_size = page_size
        self.concurrency = max(1, concurrency)
        self.repository = ""
        self._tags: list[str] = []
        self._rows: dict[str, int] = {}
        self._details: dict[str, TagDetail] = {}
        self._cache: dict[str, ManifestSummary] = {}
        self._cache_owner: RegistryClient | None = None
        self._pool: _Pool | None = None
        self._want_all = False
        self._dirty: set[int] = set()
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(refresh_ms)
        self._timer.timeout.connect(self.flush)
        self.feeder = PageFeeder(self._append, self._error, self.loadingChanged.emit)
        self.error = ""
        #: Summaries computed by `inspect()` (for tests and the status line).
        self.inspections = 0
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- loading -----------------------------------------------------------------------------

    def start(self, client: RegistryClient | None, repository: str = "") -> None:
        """Forget the rows and list `repository`'s tags (None or "": an empty list)."""
        self.stop()
        if client is not self._cache_owner:
            self._cache = {}
            self._cache_owner = client
        self.beginResetModel()
        self._tags, self._rows, self._details = [], {}, {}
        self._dirty.clear()
        self.repository = repository
        self.error = ""
        self._want_all = False
        self.endResetModel()
        if client is not None and repository:
            self._pool = _Pool(client, repository)
            self.feeder.start(tag_pages(client, repository, self.page_size))
            self.feeder.fetch()

    def stop(self) -> None:
        """Cancel the page fetch and the detail workers."""
        self.feeder.stop()
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.closed = True
            pool.pending.clear()
            for task in [*pool.workers, *pool.inflight.values()]:
                task.cancel()

    @property
    def loading(self) -> bool:
        return self.feeder.busy

    @property
    def complete(self) -> bool:
        return not self.feeder.more and not self.feeder.busy

    def _append(self, tags: Sequence[str]) -> None:
        fresh = [t for t in tags if t not in self._rows]
        if fresh:
            first = len(self._tags)
            self.beginInsertRows(ROOT, first, first + len(fresh) - 1)
            for tag in fresh:
                self._rows[tag] = len(self._tags)
                self._tags.append(tag)
                self._details[tag] = TagDetail()
            self.endInsertRows()
        if self._want_all:
            self._queue(fresh)
            self.feeder.fetch()

    def _error(self, exc: HoistError) -> None:
        self.error = exc.sentence(window=True)
        self.failed.emit(self.error)

    def status_text(self, repository: str) -> str:
        """What the list says under it: loading, reading details to sort, the count, more."""
        count = self.rowCount()
        more = "" if self.complete else "; more load as you scroll"
        if self.loading and not count:
            return "Loading tags…"
        if self.loading_all:
            done, total = self.detail_counts()
            return f"Reading sizes and dates to sort by them: {done} of {total}"
        if count == 0 and self.complete and not self.error:
            return f"{repository} has no tags"
        return f"{counted(count, 'tag', 'tags')}{more}"

    def load_all(self) -> None:
        """Read every page and every tag's size and date (what sorting by date needs)."""
        self._want_all = True
        self._queue(self._tags)
        self.feeder.fetch()

    @property
    def loading_all(self) -> bool:
        """`load_all` is still reading pages or details."""
        return self._want_all and self._pending_work()

    # -- details -----------------------------------------------------------------------------

    def set_visible_rows(self, rows: Iterable[int]) -> None:
        """The view shows these rows: read their sizes and dates first (and only those,
        unless `load_all` asked for every row)."""
        tags = [self._tags[r] for r in rows if 0 <= r < len(self._tags)]
        pool = self._pool
        if pool is None:
            return
        wanted = [t for t in tags if self._details[t].state == DetailState.UNKNOWN]
        if self._want_all:
            first = set(wanted)
            pool.pending = dict.fromkeys([*wanted, *(t for t in pool.pending if t not in first)])
        else:
            pool.pending = dict.fromkeys(wanted)
        self._spawn_workers(pool)

    def _queue(self, tags: Iterable[str]) -> None:
        pool = self._pool
        if pool is None:
            return
        for tag in tags:
            if self._details[tag].state == DetailState.UNKNOWN:
                pool.pending[tag] = None
        self._spawn_workers(pool)

    def _spawn_workers(self, pool: _Pool) -> None:
        if not pool.pending:
            return
        loop = asyncio.get_running_loop()
        while len(pool.workers) < min(self.concurrency, len(pool.pending)):
            task = loop.create_task(self._work(pool))
            pool.workers.add(task)
            task.add_done_callback(pool.workers.discard)
            self._keep(task)

    async def _work(self, pool: _Pool) -> None:
        while pool.pending and not pool.closed:
            tag = next(iter(pool.pending))
            del pool.pending[tag]
            detail = self._details.get(tag)
            if detail is None or detail.state != DetailState.UNKNOWN:
                continue
            detail.state = DetailState.LOADING
            self._mark(tag, pool)
            try:
                digest = await resolve_digest(pool.client, pool.repository, tag)
                detail.digest = digest
                detail.summary = await self._summary(pool, digest)
                detail.state = DetailState.DONE
            except HoistError as exc:
                detail.state = DetailState.FAILED
                detail.error = exc.sentence(window=True)
            except asyncio.CancelledError:
                detail.state = DetailState.UNKNOWN
                raise
            self._mark(tag, pool)

    async def _summary(self, pool: _Pool, digest: str) -> ManifestSummary:
        cached = self._cache.get(digest)
        if cached is not None:
            return cached
        task = pool.inflight.get(digest)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._inspect(pool, digest))
            pool.inflight[digest] = task
            task.add_done_callback(lambda _t: pool.inflight.pop(digest, None))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await asyncio.shield(task)

    async def _inspect(self, pool: _Pool, digest: str) -> ManifestSummary:
        info = await inspect(
            pool.client, pool.repository, digest, with_referrers=False, concurrency=2
        )
        self.inspections += 1
        summary = ManifestSummary.of(info)
        if not pool.closed:
            self._cache[digest] = summary
        return summary

    def _keep(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(report_task_failure)

    def running_tasks(self) -> set[asyncio.Task[Any]]:
        """Tasks still using the client (cancelled ones included until they have ended)."""
        return {t for t in self._tasks | self.feeder.tasks if not t.done()}

    def note_info(self, tag: str, info: ManifestInfo) -> None:
        """A full inspect of `tag` (the details pane's) also fills its row and the cache."""
        summary = ManifestSummary.of(info)
        self._cache[info.digest] = summary
        detail = self._details.get(tag)
        if detail is None:
            return
        detail.digest, detail.summary, detail.state = info.digest, summary, DetailState.DONE
        detail.error = ""
        self._mark(tag, self._pool)

    def _mark(self, tag: str, pool: _Pool | None) -> None:
        if pool is not self._pool or tag not in self._rows:
            return
        self._dirty.add(self._rows[tag])
        if not self._timer.isActive():
            self._timer.start()

    def flush(self) -> None:
        """Tell the view which rows' sizes and dates changed (one range per flush)."""
        self._timer.stop()
        rows = [r for r in self._dirty if r < len(self._tags)]
        self._dirty.clear()
        if rows:
            self.dataChanged.emit(
                self.index(min(rows), TagColumn.SIZE), self.index(max(rows), TagColumn.DIGEST)
            )
        self.detailsChanged.emit()

    def _pending_work(self) -> bool:
        pool = self._pool
        if self.feeder.more or self.feeder.busy or self._dirty:
            return True
        return pool is not None and bool(pool.pending or pool.workers)

    def detail_counts(self) -> tuple[int, int]:
        """(rows whose size and date are read or failed, rows)."""
        done = sum(
            1 for d in self._details.values() if d.state in (DetailState.DONE, DetailState.FAILED)
        )
        return done, len(self._tags)

    # -- reading -----------------------------------------------------------------------------

    def tags(self) -> list[str]:
        return list(self._tags)

    def tag_at(self, row: int) -> str | None:
        return self._tags[row] if 0 <= row < len(self._tags) else None

    def row_of(self, tag: str) -> int:
        return self._rows.get(tag, -1)

    def detail(self, tag: str) -> TagDetail | None:
        return self._details.get(tag)

    def remove_tags(self, tags: Iterable[str]) -> None:
        """Drop rows (tags deleted from the registry), one contiguous run at a time."""
        rows = sorted({self._rows[t] for t in tags if t in self._rows}, reverse=True)
        while rows:
            last = first = rows.pop(0)
            while rows and rows[0] == first - 1:
                first = rows.pop(0)
            self.beginRemoveRows(ROOT, first, last)
            for tag in self._tags[first : last + 1]:
                self._details.pop(tag, None)
                if self._pool is not None:
                    self._pool.pending.pop(tag, None)
            del self._tags[first : last + 1]
            self._rows = {t: i for i, t in enumerate(self._tags)}
            self._dirty = {r for r in self._dirty if r < first}
            self.endRemoveRows()

    def rowCount(self, parent: Index = ROOT) -> int:
        return 0 if parent.isValid() else len(self._tags)

    def columnCount(self, parent: Index = ROOT) -> int:
        return 0 if parent.isValid() else len(TAG_HEADERS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        return column_heading(TAG_HEADERS, section, orientation, role, (TagColumn.SIZE,))

    def flags(self, index: Index) -> Qt.ItemFlag:
        return read_only_flags(index, leaf=True)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._tags):
            return None
        tag = self._tags[index.row()]
        detail = self._details[tag]
        column = index.column()
        if role == NameRole:
            return tag
        if role == Qt.ItemDataRole.DisplayRole:
            return tag_cell_text(tag, detail, column)
        if role == SortRole:
            return tag_sort_key(tag, detail, column)
        if role == Qt.ItemDataRole.ToolTipRole:
            return tag_tooltip(tag, detail, column)
        if role == Qt.ItemDataRole.TextAlignmentRole and column == TagColumn.SIZE:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None


def tag_cell_text(tag: str, detail: TagDetail, column: int) -> str:
    """What a tag row's cell says: "…" and "loading" until its manifest was read."""
    if column == TagColumn.TAG:
        return tag
    summary = detail.summary
    if detail.state == DetailState.FAILED:
        return FAILED
    if column == TagColumn.DIGEST:
        return short_digest(detail.digest) if detail.digest else LOADING_SIZE
    if summary is None:
        return LOADING_SIZE if column == TagColumn.SIZE else LOADING_DATE
    if column == TagColumn.SIZE:
        return format_size(summary.size)
    if column == TagColumn.CREATED:
        return format_created(summary.created)
    return ""


def tag_sort_key(tag: str, detail: TagDetail, column: int) -> Any:
    summary = detail.summary
    if column == TagColumn.SIZE:
        return summary.size if summary is not None else -1
    if column == TagColumn.CREATED:
        return created_sort_key(summary.created) if summary is not None else ""
    if column == TagColumn.DIGEST:
        return detail.digest or ""
    return tag


def tag_tooltip(tag: str, detail: TagDetail, column: int) -> str | None:
    if detail.state == DetailState.FAILED:
        return detail.error
    if column == TagColumn.DIGEST:
        return detail.digest
    if column == TagColumn.CREATED and detail.summary is not None:
        return detail.summary.created or "The manifest does not say when it was created"
    if column == TagColumn.SIZE and detail.summary is not None:
        return size_text(detail.summary.size)
    return None


class TagSortProxy(NameFilterProxy):
    """Filter by tag name, sort by any column (sizes as numbers, dates as dates).

    Rows whose size or date is not read yet sort as smallest / oldest, so "newest first"
    puts them last rather than scattered.
    """
