"""What a registry holds, as Qt models: the pieces every list shares, and the repositories.

The chain is the one qutebrowser's downloads use (engine objects → Qt models → views):
`hoist.core.registry.listing`'s async iterators and `ManifestInfo` → these models → the views in
`hoist.gui.browse.pane`. Nothing here blocks the loop. The tags are in `tag_model`, one
manifest's details in `manifest_details`; their shared roles, constants, text formats, the
page pump and the name filter are here.

- `RepositoryModel` and `TagModel` load pages as the list scrolls: Qt's `canFetchMore` /
  `fetchMore` (called by the view when its last row comes into sight) pull one more page from
  the engine's async iterator, so the first page of a catalog of thousands shows while the
  rest has not been asked for. `PageFeeder` is that one-page-at-a-time pump, shared by both.

Registry behaviours met here: distribution 2.8 ignores `n` on `tags/list` and sends every tag
in one page (the model then simply has no second page); Docker Hub and GHCR refuse
`_catalog` (`CatalogUnavailable`, told to the pane through `catalogUnavailable`).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from PySide6.QtCore import (
    QAbstractListModel,
    QObject,
    QSortFilterProxyModel,
    Qt,
    Signal,
)

from hoist.core.errors import CatalogUnavailable, HoistError
from hoist.core.registry.client import RegistryClient
from hoist.core.registry.listing import catalog_pages
from hoist.core.units import format_size
from hoist.gui.widgets.item_models import ROOT, Index, read_only_flags
from hoist.gui.widgets.tasks import report_task_failure

log = logging.getLogger(__name__)


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


class FetchedByPages:
    """A flat model's `canFetchMore`/`fetchMore` (mixed in before the Qt model class): its
    `feeder` reads the next page when the view scrolls near the end."""

    feeder: PageFeeder

    def canFetchMore(self, parent: Index = ROOT) -> bool:
        return not parent.isValid() and self.feeder.more

    def fetchMore(self, parent: Index = ROOT) -> None:
        if not parent.isValid():
            self.feeder.fetch()


class RepositoryModel(FetchedByPages, QAbstractListModel):
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

    def status_text(self, shown: int, filtered: bool) -> str:
        """What the list says under it: loaded, matching the filter (`shown` of them), more."""
        loaded = self.rowCount()
        more = "" if self.complete else "; more load as you scroll"
        if self.loading:
            return (
                f"{counted(loaded, 'repository', 'repositories')}, loading more…"
                if loaded
                else "Loading repositories…"
            )
        if filtered:
            match = "matches" if shown == 1 else "match"
            return f"{shown} of {counted(loaded, 'repository', 'repositories')} {match}{more}"
        if loaded == 0 and self.complete and not self.error:
            return "This registry holds no repositories yet"
        return f"{counted(loaded, 'repository', 'repositories')}{more}"

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
        return read_only_flags(index, leaf=True)


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


__all__ = [
    "DETAIL_CONCURRENCY",
    "PAGE_SIZE",
    "CopyRole",
    "FetchedByPages",
    "KeyRole",
    "NameFilterProxy",
    "NameRole",
    "PageFeeder",
    "RepositoryModel",
    "SortRole",
    "created_sort_key",
    "format_created",
    "parse_created",
    "size_text",
]
