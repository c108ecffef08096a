"""What a registry holds, as Qt models: repositories, tags, and one manifest's details.

The chain is the one qutebrowser's downloads use (engine objects → Qt models → views):
`hoist.core.registry.browse`'s async iterators and `ManifestInfo` → these models → the views in
`hoist.gui.browse.pane`. Nothing here blocks the loop.

- `RepositoryModel` and `TagModel` load pages as the list scrolls: Qt's `canFetchMore` /
  `fetchMore` (called by the view when its last row comes into sight) pull one more page from
  the engine's async iterator, so the first page of a catalog of thousands shows while the
  rest has not been asked for. `PageFeeder` is that one-page-at-a-time pump, shared by both.
- `TagModel` fills size and created date only for rows the view says are visible
  (`set_visible_rows`): each is a HEAD (tag → digest) and, once per digest, an `inspect()`,
  at most `concurrency` at once and cached by digest, so 3,000 tags of one image cost one
  inspect. Until then the cells say "…" and "loading". Updates are batched on a timer.
- `manifest_details()` turns a `ManifestInfo` into rows of data (tested without widgets);
  `ManifestDetailModel` shows those rows as a tree.

Registry behaviours met here: distribution 2.8 ignores `n` on `tags/list` and sends every tag
in one page (the model then simply has no second page); Docker Hub and GHCR refuse
`_catalog` (`CatalogUnavailable`, told to the pane through `catalogUnavailable`).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from typing import Any, Protocol

from hoist.core.errors import CatalogUnavailable, HoistError
from hoist.core.registry.browse import (
    ManifestInfo,
    ManifestKind,
    catalog_pages,
    inspect,
    resolve_digest,
    tag_pages,
)
from hoist.core.registry.client import RegistryClient
from hoist.core.units import format_size
from hoist.gui.widgets.tasks import report_task_failure
from PySide6.QtCore import (
    QAbstractItemModel,
    QAbstractListModel,
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    Signal,
)

log = logging.getLogger(__name__)

Index = QModelIndex | QPersistentModelIndex
#: The invisible root (a shared default argument: Qt passes its own when it calls).
ROOT = QModelIndex()

#: What a sort proxy sorts by (a number for sizes, an ISO date for dates).
SortRole = Qt.ItemDataRole.UserRole + 1
#: The tag's name, or the repository's, on every column of its row.
NameRole = Qt.ItemDataRole.UserRole + 2
#: Detail rows: the text "Copy" puts on the clipboard (the full digest, the pull command).
CopyRole = Qt.ItemDataRole.UserRole + 3
#: Detail rows: a stable key ("platform:linux/arm64", "pull") for the pane's actions.
KeyRole = Qt.ItemDataRole.UserRole + 4

PAGE_SIZE = 100
#: Tags inspected at once for their size and date.
DETAIL_CONCURRENCY = 4
#: Detail updates reach the view at most this often.
REFRESH_MS = 150

LOADING_SIZE = "…"
LOADING_DATE = "loading"
UNKNOWN = "—"
FAILED = "?"


# -- small formatting helpers ---------------------------------------------------------------

_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_created(text: str | None) -> datetime | None:
    """An RFC 3339 date as registries write it (Go's nanoseconds included), or None."""
    if not text:
        return None
    cleaned = _FRACTION.sub(r"\1", text.strip())
    if cleaned.endswith(("Z", "z")):
        cleaned = cleaned[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(cleaned)
    except ValueError:
        return None
    return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)


def format_created(text: str | None) -> str:
    """`2024-05-01 12:30 UTC`; the text as given when it is not a date; "—" when absent."""
    when = parse_created(text)
    if when is None:
        return text or UNKNOWN
    return when.strftime("%Y-%m-%d %H:%M UTC")


def created_sort_key(text: str | None) -> str:
    """A key that orders dates (UTC ISO); "" for no date, so those sort first ascending."""
    when = parse_created(text)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%f") if when else ""


def counted(count: int, one: str, many: str) -> str:
    """ "1 tag", "2 tags": a count with its noun in the right number."""
    return f"{count} {one if count == 1 else many}"


def short_digest(digest: str | None) -> str:
    if not digest:
        return ""
    algorithm, _, hexpart = digest.partition(":")
    return f"{algorithm}:{hexpart[:12]}"


def size_text(size: int | None) -> str:
    """`2.29 KiB (2,345 bytes)`; plain `1000 B` below a KiB; "unknown" for None."""
    if size is None:
        return "unknown"
    if size < 1024:
        return format_size(size)
    return f"{format_size(size)} ({size:,} bytes)"


# -- paging ---------------------------------------------------------------------------------


class Page(Protocol):
    """What `catalog_pages` and `tag_pages` yield (CatalogPage, TagPage)."""

    @property
    def items(self) -> tuple[str, ...]: ...

    @property
    def more(self) -> bool: ...


class PageFeeder:
    """Pulls one page at a time from an async iterator of pages, when asked.

    `fetch()` starts a task for the next page unless one is running or none is left; the
    page's items go to `on_items`, a HoistError to `on_error` (and the list ends there).
    `stop()` cancels the fetch and closes the iterator (after the cancel has landed, since an
    async generator can't be closed while it runs).
    """

    def __init__(
        self,
        on_items: Callable[[Sequence[str]], None],
        on_error: Callable[[HoistError], None],
        on_busy: Callable[[bool], None],
    ) -> None:
        self._on_items = on_items
        self._on_error = on_error
        self._on_busy = on_busy
        self._pages: AsyncIterator[Page] | None = None
        self._task: asyncio.Task[None] | None = None
        self._generation = 0
        self.more = False
        self.busy = False
        self.pages_read = 0
        self.tasks: set[asyncio.Task[Any]] = set()

    def start(self, pages: AsyncIterator[Page]) -> None:
        self.stop()
        self._pages = pages
        self.more = True
        self.pages_read = 0

    def fetch(self) -> bool:
        """Ask for the next page; False when one is on its way or none is left."""
        if self.busy or not self.more or self._pages is None:
            return False
        loop = asyncio.get_running_loop()
        self._set_busy(True)
        task = loop.create_task(self._next(self._pages, self._generation))
        self._task = task
        self._keep(task)
        return True

    async def _next(self, pages: AsyncIterator[Page], generation: int) -> None:
        try:
            page = await anext(pages)
        except StopAsyncIteration:
            if generation == self._generation:
                self._finish(more=False)
            return
        except HoistError as exc:
            if generation == self._generation:
                self._finish(more=False)
                self._on_error(exc)
            return
        except BaseException:
            if generation == self._generation:
                self._finish(more=False)
            raise
        if generation != self._generation:
            return
        self.pages_read += 1
        # Not busy before the rows go in: a view that inserts them and still has room asks
        # for the next page at once, and must not be told "busy".
        self._finish(more=page.more)
        self._on_items(page.items)

    def _finish(self, *, more: bool) -> None:
        self.more = more
        self._task = None
        self._set_busy(False)

    def _set_busy(self, busy: bool) -> None:
        if busy != self.busy:
            self.busy = busy
            self._on_busy(busy)

    def stop(self) -> None:
        self._generation += 1
        task, pages = self._task, self._pages
        self._task = self._pages = None
        self.more = False
        self._set_busy(False)
        if task is not None:
            task.cancel()
        if pages is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop any more: the loop's shutdown_asyncgens closes it
            return
        self._keep(loop.create_task(self._close(task, pages)))

    @staticmethod
    async def _close(task: asyncio.Task[None] | None, pages: AsyncIterator[Page]) -> None:
        if task is not None:
            await asyncio.wait([task])
        aclose = getattr(pages, "aclose", None)
        if aclose is not None:
            try:
                await aclose()
            except HoistError:  # the generator's own cleanup met a network error: moot now
                pass

    def _keep(self, task: asyncio.Task[Any]) -> None:
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        task.add_done_callback(report_task_failure)

    async def wait(self) -> None:
        """Until the page being fetched (if any) has arrived."""
        while self._task is not None:
            await asyncio.wait([self._task])


# -- repositories ---------------------------------------------------------------------------


class RepositoryModel(QAbstractListModel):
    """The registry's repositories, a page at a time as the list scrolls.

    Signals:
        loadingChanged(bool): a page is (no longer) on its way.
        catalogUnavailable(str): the registry does not list its repositories (a sentence
            saying so and what to do instead).
        failed(str): a page could not be read (the error's sentence); the list stops there.
    """

    loadingChanged = Signal(bool)
    catalogUnavailable = Signal(str)
    failed = Signal(str)

    def __init__(self, parent: QObject | None = None, *, page_size: int = PAGE_SIZE) -> None:
        super().__init__(parent)
        self.page_size = page_size
        self._names: list[str] = []
        self.feeder = PageFeeder(self._append, self._error, self.loadingChanged.emit)
        self.unavailable = False
        self.error = ""

    # -- loading -----------------------------------------------------------------------------

    def start(self, client: RegistryClient | None) -> None:
        """Forget the list and read the catalog of `client` (None: an empty list)."""
        self.feeder.stop()
        self.beginResetModel()
        self._names = []
        self.unavailable = False
        self.error = ""
        self.endResetModel()
        if client is not None:
            self.feeder.start(catalog_pages(client, self.page_size))
            self.feeder.fetch()

    def stop(self) -> None:
        self.feeder.stop()

    @property
    def loading(self) -> bool:
        return self.feeder.busy

    def running_tasks(self) -> set[asyncio.Task[Any]]:
        return {t for t in self.feeder.tasks if not t.done()}

    @property
    def complete(self) -> bool:
        """Every page has been read (or the list ended with an error)."""
        return not self.feeder.more and not self.feeder.busy

    def _append(self, names: Sequence[str]) -> None:
        if not names:
            return
        first = len(self._names)
        self.beginInsertRows(ROOT, first, first + len(names) - 1)
        self._names.extend(names)
        self.endInsertRows()

    def _error(self, exc: HoistError) -> None:
        if isinstance(exc, CatalogUnavailable):
            self.unavailable = True
            self.error = exc.sentence(window=True)
            self.catalogUnavailable.emit(self.error)
        else:
            self.error = exc.sentence(window=True)
            self.failed.emit(self.error)

    def canFetchMore(self, parent: Index = ROOT) -> bool:
        return not parent.isValid() and self.feeder.more

    def fetchMore(self, parent: Index = ROOT) -> None:
        if not parent.isValid():
            self.feeder.fetch()

    # -- reading -----------------------------------------------------------------------------

    def names(self) -> list[str]:
        return list(self._names)

    def name_at(self, row: int) -> str | None:
        return self._names[row] if 0 <= row < len(self._names) else None

    def row_of(self, name: str) -> int:
        try:
            return self._names.index(name)
        except ValueError:
            return -1

    def rowCount(self, parent: Index = ROOT) -> int:
        return 0 if parent.isValid() else len(self._names)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._names):
            return None
        name = self._names[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole, NameRole, SortRole):
            return name
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return (
            Qt.ItemFlag.ItemIsEnabled
            | Qt.ItemFlag.ItemIsSelectable
            | Qt.ItemFlag.ItemNeverHasChildren
        )


class NameFilterProxy(QSortFilterProxyModel):
    """Case-insensitive "contains" filter on names, for the filter boxes.

    It filters the rows loaded so far; the view, seeing too few rows to fill itself, keeps
    asking for more pages (`canFetchMore` passes through the proxy), so a search walks the
    catalog only as far as it needs to fill the list.
    """

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.setSortCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.setFilterRole(NameRole)
        self.setFilterKeyColumn(0)
        self.setSortRole(SortRole)

    def set_filter_text(self, text: str) -> None:
        self.setFilterFixedString(text.strip())


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


class TagModel(QAbstractTableModel):
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

    def canFetchMore(self, parent: Index = ROOT) -> bool:
        return not parent.isValid() and self.feeder.more

    def fetchMore(self, parent: Index = ROOT) -> None:
        if not parent.isValid():
            self.feeder.fetch()

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
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(TAG_HEADERS):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return TAG_HEADERS[section]
        if role == Qt.ItemDataRole.TextAlignmentRole:
            # Sizes are right-aligned: so is their heading.
            right = section == TagColumn.SIZE
            horizontal = Qt.AlignmentFlag.AlignRight if right else Qt.AlignmentFlag.AlignLeft
            return int(horizontal | Qt.AlignmentFlag.AlignVCenter)
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return (
            Qt.ItemFlag.ItemIsEnabled
            | Qt.ItemFlag.ItemIsSelectable
            | Qt.ItemFlag.ItemNeverHasChildren
        )

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


# -- manifest details -----------------------------------------------------------------------


@dataclass(frozen=True)
class DetailRow:
    """One line of the details tree: a label, a value, what Copy copies, and children."""

    label: str
    value: str = ""
    children: tuple[DetailRow, ...] = ()
    copy: str = ""
    key: str = ""
    tooltip: str = ""


KIND_LABELS = {
    ManifestKind.OCI_IMAGE: "OCI image",
    ManifestKind.DOCKER_IMAGE: "Docker image",
    ManifestKind.OCI_INDEX: "OCI image index (multi-platform)",
    ManifestKind.DOCKER_LIST: "Docker manifest list (multi-platform)",
    ManifestKind.ARTIFACT: "OCI artifact",
}


def kind_label(info: ManifestInfo) -> str:
    if info.kind.is_index and info.artifact_type:
        return "OCI artifact index"
    return KIND_LABELS.get(info.kind, str(info.kind))


def manifest_details(info: ManifestInfo) -> list[DetailRow]:
    """The details tree of a manifest, as data: what it is, its size and date, its files or
    layers (with titles and sizes), its platforms with each one's size, its annotations, the
    manifests that refer to it, and the pull command."""
    rows = [
        DetailRow("Reference", info.reference, copy=info.reference),
        DetailRow("Kind", kind_label(info)),
        DetailRow("Media type", info.media_type, copy=info.media_type),
    ]
    if info.artifact_type:
        rows.append(DetailRow("Artifact type", info.artifact_type, copy=info.artifact_type))
    rows.append(DetailRow("Digest", info.digest, copy=info.digest))
    size_label = "Size (all platforms)" if info.kind.is_index else "Size"
    rows.append(
        DetailRow(size_label, size_text(info.total_size), tooltip="config and layers, each once")
    )
    rows.append(DetailRow("Created", format_created(info.created), tooltip=info.created or ""))
    if info.pull_command:
        rows.append(
            DetailRow("Pull command", info.pull_command, copy=info.pull_command, key="pull")
        )
    if info.kind.is_index:
        rows.append(_platform_rows(info))
    elif info.kind == ManifestKind.ARTIFACT:
        rows.append(_file_rows(info))
    else:
        rows.append(_layer_rows(info))
    if info.subject:
        rows.append(DetailRow("Refers to", info.subject, copy=info.subject))
    if info.annotations:
        rows.append(
            DetailRow(
                f"Annotations ({len(info.annotations)})",
                children=tuple(
                    DetailRow(key, value, copy=value)
                    for key, value in sorted(info.annotations.items())
                ),
            )
        )
    if info.referrers:
        rows.append(
            DetailRow(
                f"Referrers ({len(info.referrers)})",
                "signatures, SBOMs and other manifests about this one",
                children=tuple(
                    DetailRow(
                        r.artifact_type or r.media_type,
                        f"{short_digest(r.digest)} · {format_size(r.size)}",
                        copy=r.digest,
                    )
                    for r in info.referrers
                ),
            )
        )
    if info.warnings:
        rows.append(
            DetailRow(
                f"Could not read ({len(info.warnings)})",
                children=tuple(DetailRow(w) for w in info.warnings),
            )
        )
    return rows


def _blob_children(digest: str, media_type: str) -> tuple[DetailRow, ...]:
    return (
        DetailRow("Digest", digest, copy=digest),
        DetailRow("Media type", media_type, copy=media_type),
    )


def _file_rows(info: ManifestInfo) -> DetailRow:
    files = []
    for number, layer in enumerate(info.layers, 1):
        label = layer.title or f"layer {number} (untitled)"
        files.append(
            DetailRow(
                label,
                size_text(layer.size),
                children=_blob_children(layer.digest, layer.media_type),
                copy=layer.title or layer.digest,
                key=f"file:{number}",
            )
        )
    total = sum(layer.size for layer in info.layers)
    return DetailRow(f"Files ({len(files)})", format_size(total), children=tuple(files))


def _layer_rows(info: ManifestInfo) -> DetailRow:
    children = []
    if info.config is not None:
        children.append(
            DetailRow(
                "config",
                size_text(info.config.size),
                children=_blob_children(info.config.digest, info.config.media_type),
                copy=info.config.digest,
            )
        )
    for number, layer in enumerate(info.layers, 1):
        children.append(
            DetailRow(
                f"layer {number}",
                size_text(layer.size),
                children=_blob_children(layer.digest, layer.media_type),
                copy=layer.digest,
                key=f"layer:{number}",
            )
        )
    total = sum(layer.size for layer in info.layers)
    return DetailRow(f"Layers ({len(info.layers)})", format_size(total), children=tuple(children))


def _platform_rows(info: ManifestInfo) -> DetailRow:
    children = []
    for platform in info.platforms:
        if platform.attestation:
            label = f"attestation ({short_digest(platform.digest)})"
        else:
            label = platform.platform or f"no platform ({short_digest(platform.digest)})"
        if platform.artifact_type and not platform.attestation:
            label += f" · {platform.artifact_type}"
        value = (
            size_text(platform.content_size)
            if platform.content_size is not None
            else "size unknown (its manifest could not be read)"
        )
        children.append(
            DetailRow(
                label,
                value,
                children=(
                    DetailRow("Digest", platform.digest, copy=platform.digest),
                    DetailRow("Media type", platform.media_type, copy=platform.media_type),
                    DetailRow("Created", format_created(platform.created)),
                ),
                copy=platform.digest,
                key=f"platform:{platform.platform}" if platform.platform else "",
            )
        )
    runnable = [p for p in info.platforms if not p.attestation]
    return DetailRow(
        f"Platforms ({len(runnable)})",
        "each platform's config and layers",
        children=tuple(children),
    )


@dataclass
class _Node:
    row: DetailRow
    parent: int  # node id of the parent, -1 for a top-level row
    number: int  # row number under its parent
    children: list[int] = field(default_factory=list)


class ManifestDetailModel(QAbstractItemModel):
    """The `manifest_details` rows as a two-column tree (field, value)."""

    HEADERS = ("Field", "Value")

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._nodes: list[_Node] = []
        self._top: list[int] = []
        self.info: ManifestInfo | None = None

    def set_info(self, info: ManifestInfo | None) -> None:
        self.set_rows(manifest_details(info) if info is not None else [])
        self.info = info

    def set_rows(self, rows: Sequence[DetailRow]) -> None:
        self.beginResetModel()
        self._nodes, self._top = [], []
        self.info = None
        for number, row in enumerate(rows):
            self._top.append(self._add(row, -1, number))
        self.endResetModel()

    def _add(self, row: DetailRow, parent: int, number: int) -> int:
        node_id = len(self._nodes)
        node = _Node(row, parent, number)
        self._nodes.append(node)
        for i, child in enumerate(row.children):
            node.children.append(self._add(child, node_id, i))
        return node_id

    def row_data(self, index: Index) -> DetailRow | None:
        node = self._node(index)
        return node.row if node is not None else None

    def find(self, label: str, parent: Index = ROOT) -> QModelIndex:
        """The first row labelled `label` under `parent` (tests and "show platform")."""
        for r in range(self.rowCount(parent)):
            index = self.index(r, 0, parent)
            if self.data(index) == label:
                return index
        return QModelIndex()

    def _node(self, index: Index) -> _Node | None:
        if not index.isValid():
            return None
        node_id = int(index.internalId())
        return self._nodes[node_id] if 0 <= node_id < len(self._nodes) else None

    def _ids(self, parent: Index) -> list[int]:
        if not parent.isValid():
            return self._top
        node = self._node(parent)
        if node is None or parent.column() != 0:
            return []
        return node.children

    def index(self, row: int, column: int, parent: Index = ROOT) -> QModelIndex:
        ids = self._ids(parent)
        if not 0 <= row < len(ids) or not 0 <= column < len(self.HEADERS):
            return QModelIndex()
        return self.createIndex(row, column, ids[row])

    def parent(self, index: Index = ROOT) -> QModelIndex:  # type: ignore[override]
        node = self._node(index)
        if node is None or node.parent < 0:
            return QModelIndex()
        parent = self._nodes[node.parent]
        return self.createIndex(parent.number, 0, node.parent)

    def rowCount(self, parent: Index = ROOT) -> int:
        return len(self._ids(parent))

    def columnCount(self, parent: Index = ROOT) -> int:
        return len(self.HEADERS)

    def hasChildren(self, parent: Index = ROOT) -> bool:
        return bool(self._ids(parent))

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if (
            orientation == Qt.Orientation.Horizontal
            and role == Qt.ItemDataRole.DisplayRole
            and 0 <= section < len(self.HEADERS)
        ):
            return self.HEADERS[section]
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        node = self._node(index)
        if node is None:
            return None
        row = node.row
        if role == Qt.ItemDataRole.DisplayRole:
            return row.label if index.column() == 0 else row.value
        if role == Qt.ItemDataRole.ToolTipRole:
            text = row.tooltip or (row.value if index.column() == 1 else row.label)
            return text or None
        if role == CopyRole:
            return row.copy or row.value or row.label
        if role == KeyRole:
            return row.key
        return None


__all__ = [
    "DETAIL_CONCURRENCY",
    "PAGE_SIZE",
    "TAG_HEADERS",
    "CopyRole",
    "DetailRow",
    "DetailState",
    "KeyRole",
    "ManifestDetailModel",
    "ManifestSummary",
    "NameFilterProxy",
    "NameRole",
    "PageFeeder",
    "RepositoryModel",
    "SortRole",
    "TagColumn",
    "TagDetail",
    "TagModel",
    "TagSortProxy",
    "created_sort_key",
    "format_created",
    "kind_label",
    "manifest_details",
    "parse_created",
    "short_digest",
    "size_text",
]
