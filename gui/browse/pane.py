"""The Browse area: a registry's repositories, a repository's tags, one manifest's details.

What the pane does lives here; its widgets and their layout are `layout.BrowseLayout`, and
what can stand alone has its own module: the actions as data (`actions`), delete plans and
the delete's registry calls (`deleting`), download references (`downloads`), and the models
(`models`, `tag_model`, `manifest_details`).

Layout, left to right: repositories (a filter box over a list that loads pages as it scrolls,
and a field to open a repository by name, which is the only way in where the registry does not
list its repositories), tags (tag, size, created, digest; sizes and dates read for the rows
in sight), and the details of the chosen tag with Copy pull command, Download and Delete.

Every action is a QAction with a shortcut; what each says and whether it can run now comes
from `browse_actions()`, a plain function of the pane's state (tested without widgets), as
`hoist.gui.transfers.actions` does for transfers. Deleting asks first, naming the other tags
that share the manifest (registries delete by digest: they go too), and says the registry's
refusal as a sentence (distribution without `storage.delete.enabled` answers 405 UNSUPPORTED).

Download asks for a folder and hands the download to the window's transfer queue with
`downloadRequested(reference, folder, platform)`: there it has a row like any push, is paused,
resumed and journaled, and survives a restart. Background work is a task kept in
`self.tasks`; busy flags are reset in `finally`; dialogs are opened window-modal with `open()`
and awaited, never `exec()`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QEvent,
    QModelIndex,
    QObject,
    QPoint,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QMenu,
    QWidget,
)

from hoist.core.errors import DeleteRefused, HoistError, InvalidReference
from hoist.core.oci.digest import is_digest
from hoist.core.oci.reference import Reference, parse_reference
from hoist.core.registry.browse import inspect
from hoist.core.registry.client import RegistryClient
from hoist.core.registry.deletion import DeletePlan, delete_manifests, plan_delete
from hoist.gui.add.planning import CredentialCache
from hoist.gui.browse.actions import (
    MENU_LAYOUT,
    SHORTCUTS,
    WINDOW_WIDE,
    BrowseAction,
    PaneState,
    browse_actions,
)
from hoist.gui.browse.deleting import delete_message, delete_outcome
from hoist.gui.browse.downloads import download_platform, download_reference
from hoist.gui.browse.layout import BrowseLayout, visible_source_rows
from hoist.gui.browse.models import (
    PAGE_SIZE,
    KeyRole,
)
from hoist.gui.browse.tag_model import TagColumn
from hoist.gui.settings.store import RegistrySettings, make_client
from hoist.gui.widgets.clipboard import clipboard_copy
from hoist.gui.widgets.dialogs import ConfirmDialog, wait_signal
from hoist.gui.widgets.tasks import spawn_reported

log = logging.getLogger(__name__)

# -- the pane -------------------------------------------------------------------------------


class BrowsePane(BrowseLayout):
    """Browse one registry: repositories → tags → details, with download and delete.

    Args:
        registry: the registry to show first (settings entry), or None.
        credentials: the window's credential cache (keyring lookups happen there, off the
            loop); without one, credentials are looked up here in a worker thread.
        copy_text: puts text on the clipboard (tests pass their own).
        page_size: entries per catalog and tag page.

    Signals:
        statusMessage(str): a sentence for the window's status bar.
        downloadRequested(str, str, str): (reference, folder, platform or ""): the window
            queues the download; the reference is pinned by digest, with its tag for people.
        repositoryOpened(str): the tags of this repository are being listed.
    """

    statusMessage = Signal(str)
    downloadRequested = Signal(str, str, str)
    repositoryOpened = Signal(str)

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        registry: RegistrySettings | None = None,
        credentials: CredentialCache | None = None,
        copy_text: Callable[[str], None] | None = None,
        page_size: int = PAGE_SIZE,
    ) -> None:
        super().__init__(parent, page_size=page_size)
        self.credentials = credentials
        self.copy_text = copy_text or clipboard_copy
        self.tasks: set[asyncio.Task[Any]] = set()
        self.client: RegistryClient | None = None
        self.registry_name = ""
        self.repository = ""
        #: Asks for a folder; tests replace it. Returns None when the user cancels.
        self.choose_folder: Callable[[str], Awaitable[Path | None]] = self._ask_folder
        self.confirm_box: ConfirmDialog | None = None
        self.last_message = ""
        self._owns_client = False
        self._registry_key: object = None
        self._connect_task: asyncio.Task[None] | None = None
        self._detail_task: asyncio.Task[None] | None = None
        self._detail_tag = ""
        self._deleting = False
        self._delete_refused = ""

        self._visible_timer = QTimer(self)
        self._visible_timer.setSingleShot(True)
        self._visible_timer.setInterval(40)
        self._visible_timer.timeout.connect(self._report_visible_rows)
        self._build_actions()
        self._connect_signals()
        self.refresh_actions()
        self._show_title()
        if registry is not None:
            # Connecting needs the running loop, which the window's constructor may precede.
            QTimer.singleShot(0, self, lambda: self.set_registry(registry))

    def _build_actions(self) -> None:
        handlers: dict[str, Callable[[], None]] = {
            "refresh": self.refresh,
            "filter": self._focus_filter,
            "open_repository": self._focus_repository_name,
            "copy_pull": self.copy_pull_command,
            "download": self.download_selected,
            "delete": self.delete_selected,
        }
        self.qactions: dict[str, QAction] = {}
        for key in handlers:
            action = QAction(self)
            action.setObjectName(f"browse-{key}")
            action.setShortcut(QKeySequence(SHORTCUTS[key]))
            # Ctrl+F and F5 work wherever focus is while Browse shows (just after choosing
            # its tab, say); the others act on what has focus in the pane.
            action.setShortcutContext(
                Qt.ShortcutContext.WindowShortcut
                if key in WINDOW_WIDE
                else Qt.ShortcutContext.WidgetWithChildrenShortcut
            )
            action.triggered.connect(lambda _checked=False, k=key: self.trigger(k))
            self.addAction(action)
            self.qactions[key] = action
        self._handlers = handlers
        self.copy_button.setDefaultAction(self.qactions["copy_pull"])
        self.download_button.setDefaultAction(self.qactions["download"])
        self.delete_button.setDefaultAction(self.qactions["delete"])

    def _connect_signals(self) -> None:
        self.repo_filter.textChanged.connect(self.repo_proxy.set_filter_text)
        self.tag_filter.textChanged.connect(self.tag_proxy.set_filter_text)
        self.repo_view.selectionModel().currentChanged.connect(self._repository_chosen)
        self.repo_view.activated.connect(self._repository_chosen)
        self.repo_name.returnPressed.connect(self._open_typed_repository)
        self.repo_open.clicked.connect(self._open_typed_repository)
        self.repo_model.catalogUnavailable.connect(self._catalog_unavailable)
        self.repo_model.failed.connect(lambda text: self.show_message(text, error=True))
        self.repo_model.loadingChanged.connect(lambda _busy: self._update_repo_status())
        self.repo_model.rowsInserted.connect(lambda *_: self._update_repo_status())
        self.repo_model.rowsInserted.connect(lambda *_: self._select_open_repository())
        self.repo_model.modelReset.connect(self._update_repo_status)
        self.repo_proxy.rowsInserted.connect(lambda *_: self._update_repo_status())
        self.repo_proxy.rowsRemoved.connect(lambda *_: self._update_repo_status())
        self.repo_proxy.layoutChanged.connect(self._update_repo_status)

        selection = self.tag_view.selectionModel()
        selection.currentRowChanged.connect(self._tag_current_changed)
        selection.selectionChanged.connect(lambda *_: self._tag_selection_changed())
        self.tag_view.customContextMenuRequested.connect(self._tag_menu)
        self.tag_view.horizontalHeader().sortIndicatorChanged.connect(self._sort_changed)
        self.tag_view.verticalScrollBar().valueChanged.connect(self._schedule_visible)
        self.tag_view.viewport().installEventFilter(self)
        for signal in (self.tag_proxy.rowsInserted, self.tag_proxy.rowsRemoved,
                       self.tag_proxy.layoutChanged, self.tag_proxy.modelReset):  # fmt: skip
            signal.connect(self._schedule_visible)
        self.tag_model.loadingChanged.connect(lambda _busy: self._update_tag_status())
        self.tag_model.detailsChanged.connect(self._update_tag_status)
        self.tag_model.failed.connect(lambda text: self.show_message(text, error=True))
        self.tag_model.modelReset.connect(self._update_tag_status)
        self.tag_model.rowsInserted.connect(lambda *_: self._update_tag_status())

    # -- background tasks --------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run `coro` in the background, keeping a reference; a bug reaches the excepthook."""
        return spawn_reported(self.tasks, coro)

    async def aclose(self) -> None:
        """Stop everything (tasks, page fetches) and close the client this pane opened."""
        current = asyncio.current_task()
        for task in list(self.tasks):
            if task is not current:
                task.cancel()
        await self._release_client()
        pending = [t for t in self.tasks if t is not current and not t.done()]
        if pending:
            await asyncio.wait(pending)

    # -- registry ----------------------------------------------------------------------------

    def set_registry(
        self,
        registry: RegistrySettings | RegistryClient | None,
        display_name: str = "",
        *,
        reconnect: bool = False,
    ) -> None:
        """Browse `registry`: a settings entry (the pane opens and closes its own client,
        with the credentials the cache knows), a client the caller owns, or None.

        Choosing the registry already shown keeps where the user was, unless `reconnect`
        (its credentials changed: a new client signs in with them).
        """
        key = _registry_key(registry)
        if key is not None and key == self._registry_key and not reconnect:
            name = display_name or getattr(registry, "name", "")
            if name and name != self.registry_name and self.client is not None:
                self.registry_name = name  # renamed: same connection, new title
                self._show_title()
            return
        self._registry_key = key
        if self._connect_task is not None:
            self._connect_task.cancel()
        self._connect_task = self.spawn(self._connect(registry, display_name))

    async def wait_connected(self) -> None:
        """Until the last `set_registry` has connected (or failed)."""
        task = self._connect_task
        if task is not None and not task.done():
            await asyncio.wait([task])

    def refresh(self) -> None:
        """Read the catalog and the current repository's tags again (F5)."""
        if self.client is None:
            return
        self.message.hide()
        self._delete_refused = ""
        self.spawn(self._refresh())

    async def _refresh(self) -> None:
        await self._open_catalog()
        if self.repository and self.client is not None:
            self.open_repository(self.repository, force=True)

    async def _connect(
        self, registry: RegistrySettings | RegistryClient | None, display_name: str
    ) -> None:
        await self._release_client()
        self.message.hide()
        self._delete_refused = ""
        self.repository = ""
        self.tag_model.start(None)
        self._clear_details()
        self.repo_model.start(None)
        if registry is None:
            self.registry_name = ""
            self._show_title()
            return
        if isinstance(registry, RegistryClient):
            client, owned = registry, False
            self.registry_name = display_name or registry.host
        else:
            self.registry_name = display_name or registry.name
            self._show_title(connecting=True)
            try:
                credentials = await self._credentials_for(registry)
                client, owned = make_client(registry, credentials), True
            except HoistError as exc:
                self._show_title()
                self.show_message(exc.sentence(window=True), error=True)
                return
        self.client, self._owns_client = client, owned
        self._show_title()
        self.refresh_actions()
        await self._open_catalog()

    async def _open_catalog(self) -> None:
        """Ping, then list the catalog. The ping says at once whether the registry answers
        and takes the credentials, and opens the connection before the catalog, tag and
        detail requests run side by side."""
        client = self.client
        if client is None:
            return
        try:
            await client.ping()
        except HoistError as exc:
            again = f"Press {SHORTCUTS['refresh']} to try again."
            self.show_message(f"{exc.sentence(window=True)} {again}", error=True)
            return
        if client is self.client:
            self._start_catalog()

    async def _credentials_for(self, registry: RegistrySettings) -> Any:
        host = registry.host  # raises InvalidReference for a bad address
        cache = self.credentials
        if cache is not None:
            if cache.known(host):
                return cache.get(host)
            return await cache.refresh(registry)
        from hoist.core.registry.credentials import find_credentials

        found = await asyncio.to_thread(find_credentials, host, registry.username or None)
        return found.credentials if found is not None else None

    async def _release_client(self) -> None:
        self.repo_model.stop()
        self.tag_model.stop()
        if self._detail_task is not None:
            self._detail_task.cancel()
        client, owned = self.client, self._owns_client
        self.client, self._owns_client = None, False
        busy = self.repo_model.running_tasks() | self.tag_model.running_tasks()
        if self._detail_task is not None:
            busy.add(self._detail_task)
        busy = {t for t in busy if not t.done() and t is not asyncio.current_task()}
        if busy:
            await asyncio.wait(busy)
        if client is not None and owned:
            await client.aclose()

    def _start_catalog(self) -> None:
        self.no_catalog.hide()
        self.repo_view.show()
        self.repo_filter.show()
        self.repo_model.start(self.client)

    def _show_title(self, *, connecting: bool = False) -> None:
        if not self.registry_name:
            text = "Choose a registry to browse what it holds."
        elif connecting:
            text = f"Connecting to {self.registry_name}…"
        else:
            host = self.client.host if self.client is not None else ""
            shown = (
                self.registry_name
                if host in ("", self.registry_name)
                else (f"{self.registry_name} ({host})")
            )
            text = f"Browsing {shown}"
        self.title.setText(text)

    def show_message(self, text: str, *, error: bool = False) -> None:
        """Say `text` in the pane (and the window's status bar)."""
        self.last_message = text
        self.message.setText(text)
        self.message.setProperty("error", error)
        self.message.setVisible(bool(text))
        if text:
            self.statusMessage.emit(text)

    def show_download_progress(self, text: str) -> None:
        """How a download started here goes, in the pane only (the window's status bar has
        the totals; it is not told again at every step)."""
        self.message.setText(text)
        self.message.setProperty("error", False)
        self.message.setVisible(bool(text))

    # -- repositories ------------------------------------------------------------------------

    def _catalog_unavailable(self, sentence: str) -> None:
        self.repo_view.hide()
        self.repo_filter.hide()
        self.no_catalog.setText(sentence)
        self.no_catalog.show()
        self.repo_name.setFocus()
        self.statusMessage.emit(sentence)

    def _update_repo_status(self) -> None:
        model = self.repo_model
        if self.client is None or model.unavailable:
            self.repo_status.clear()
            return
        filtered = bool(self.repo_filter.text().strip())
        self.repo_status.setText(model.status_text(self.repo_proxy.rowCount(), filtered))

    def _repository_chosen(self, current: QModelIndex, *_: Any) -> None:
        if not current.isValid():
            return
        name = self.repo_model.name_at(self.repo_proxy.mapToSource(current).row())
        if name and name != self.repository:
            self.open_repository(name)

    def _open_typed_repository(self) -> None:
        text = self.repo_name.text().strip()
        if not text or self.client is None:
            return
        self.show_reference(f"{self.client.host}/{text}")

    def note_pushed(self, target: Reference) -> None:
        """A push to `target` finished: on the registry shown here, read the catalog (and
        the open repository's tags) again, so what was pushed is listed."""
        client = self.client
        if client is None or client.host not in (target.registry, target.api_host):
            return
        self.refresh()

    def open_repository(self, name: str, *, force: bool = False) -> None:
        """List `name`'s tags (selecting it in the list when it is there)."""
        if self.client is None or (name == self.repository and not force):
            return
        self.repository = name
        self.message.hide()
        self.tags_label.setText(f"&Tags of {name}")
        self._clear_details()
        self.tag_model.start(self.client, name)
        self._select_open_repository()
        self.repositoryOpened.emit(name)
        self.refresh_actions()

    def _select_open_repository(self) -> None:
        """Show the open repository as the list's current row (once its page is there)."""
        row = self.repo_model.row_of(self.repository) if self.repository else -1
        if row < 0:
            return
        index = self.repo_proxy.mapFromSource(self.repo_model.index(row, 0))
        if index.isValid() and index != self.repo_view.currentIndex():
            selection = self.repo_view.selectionModel()
            selection.blockSignals(True)  # already open: don't open it again
            selection.setCurrentIndex(index, selection.SelectionFlag.ClearAndSelect)
            selection.blockSignals(False)
            self.repo_view.viewport().update()

    def show_reference(self, text: str) -> None:
        """Open `host/repository[:tag][@digest]` here (when it is on this registry)."""
        self.spawn(self._show_reference(text))

    async def _show_reference(self, text: str) -> None:
        await self.wait_connected()
        try:
            ref = parse_reference(text)
        except InvalidReference as exc:
            self.show_message(exc.sentence(window=True), error=True)
            return
        client = self.client
        if client is None:
            return
        if client.host not in (ref.registry, ref.api_host):
            self.show_message(f"{ref} is not on {self.registry_name}: choose its registry first")
            return
        self.open_repository(ref.repository)
        wanted = ref.tag
        if wanted is None:
            if ref.digest:
                self.show_details(ref.digest)
            return
        model = self.tag_model
        while model.row_of(wanted) < 0 and not model.complete and self.repository == ref.repository:
            if model.loading:
                await model.feeder.wait()
            else:
                model.fetchMore()
        if self.repository == ref.repository and not self.select_tag(wanted):
            self.show_message(f"{ref.repository} has no tag {wanted}", error=True)

    # -- tags --------------------------------------------------------------------------------

    def select_tag(self, tag: str) -> bool:
        row = self.tag_model.row_of(tag)
        if row < 0:
            return False
        index = self.tag_proxy.mapFromSource(self.tag_model.index(row, 0))
        if not index.isValid():  # filtered out
            self.tag_filter.clear()
            index = self.tag_proxy.mapFromSource(self.tag_model.index(row, 0))
        self.tag_view.setCurrentIndex(index)
        self.tag_view.scrollTo(index)
        return True

    def selected_tags(self) -> list[str]:
        """Selected tags in view order (the current one when nothing is selected)."""
        rows = sorted(self.tag_view.selectionModel().selectedRows(0), key=lambda i: i.row())
        out = [self.tag_model.tag_at(self.tag_proxy.mapToSource(i).row()) for i in rows]
        return [t for t in out if t]

    def _tag_current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if not current.isValid():
            return
        selection = self.tag_view.selectionModel()
        if selection.hasSelection() and not selection.isRowSelected(current.row()):
            return  # Ctrl+click took it out of the selection: details follow the selection
        tag = self.tag_model.tag_at(self.tag_proxy.mapToSource(current).row())
        if tag and tag != self._detail_tag:
            self.show_details(tag)

    def _tag_selection_changed(self) -> None:
        """The details and Delete act on the same tag: with one tag selected, its details."""
        selected = self.selected_tags()
        if len(selected) == 1 and selected[0] != self._detail_tag:
            self.show_details(selected[0])
        self.refresh_actions()

    def _sort_changed(self, column: int, _order: Qt.SortOrder) -> None:
        if column in (TagColumn.SIZE, TagColumn.CREATED) and self.tag_model.rowCount():
            self.tag_model.load_all()
            self._update_tag_status()

    def _schedule_visible(self, *_: Any) -> None:
        if not self._visible_timer.isActive():
            self._visible_timer.start()

    def _report_visible_rows(self) -> None:
        self.tag_model.set_visible_rows(visible_source_rows(self.tag_view, self.tag_proxy))

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.tag_view.viewport() and event.type() in (
            QEvent.Type.Resize,
            QEvent.Type.Show,
        ):
            self._schedule_visible()
        return super().eventFilter(watched, event)

    def _update_tag_status(self) -> None:
        model = self.tag_model
        if not self.repository:
            self.tag_status.clear()
            return
        self.tag_status.setText(model.status_text(self.repository))

    # -- details -----------------------------------------------------------------------------

    def show_details(self, reference: str) -> None:
        """Inspect `reference` (a tag or digest of the open repository) and show it."""
        if self._detail_task is not None:
            self._detail_task.cancel()
        self._detail_tag = reference
        self._detail_task = self.spawn(self._load_details(self.repository, reference))

    async def _load_details(self, repository: str, reference: str) -> None:
        client = self.client
        if client is None or not repository:
            return
        self.detail_model.set_info(None)
        self.detail_title.setText(f"Reading {repository}:{reference}…")
        self.refresh_actions()
        try:
            info = await inspect(client, repository, reference)
        except HoistError as exc:
            self.detail_title.setText(exc.sentence(window=True))
            return
        finally:
            self.refresh_actions()
        if repository != self.repository or reference != self._detail_tag:
            return
        self.detail_model.set_info(info)
        self.detail_view.expandToDepth(0)
        self.detail_title.setText(f"Details of {info.reference}")
        self.tag_model.note_info(reference, info)
        self.refresh_actions()

    def _clear_details(self) -> None:
        if self._detail_task is not None:
            self._detail_task.cancel()
        self._detail_tag = ""
        self.detail_model.set_info(None)
        self.detail_title.setText("Details")

    def _selected_detail_key(self) -> str:
        index = self.detail_view.currentIndex()
        while index.isValid():
            key = self.detail_model.data(index.siblingAtColumn(0), KeyRole)
            if key:
                return str(key)
            index = index.parent()
        return ""

    # -- actions -----------------------------------------------------------------------------

    def state(self) -> PaneState:
        info = self.detail_model.info
        return PaneState(
            connected=self.client is not None,
            repository=self.repository,
            selected_tags=tuple(self.selected_tags()),
            details_shown=info is not None,
            pull_command=info.pull_command if info is not None else "",
            deleting=self._deleting,
            delete_refused=self._delete_refused,
        )

    def actions_data(self) -> dict[str, BrowseAction]:
        return browse_actions(self.state())

    def refresh_actions(self) -> None:
        for key, spec in self.actions_data().items():
            action = self.qactions[key]
            action.setText(spec.label)
            action.setEnabled(spec.enabled)
            tip = f"{spec.label} ({spec.shortcut})"
            action.setToolTip(f"{tip}: {spec.why_not}" if spec.why_not else tip)

    def trigger(self, key: str) -> None:
        """Run the action `key` if it can run now (menus, shortcuts and buttons come here)."""
        if self.actions_data()[key].enabled:
            self._handlers[key]()
        self.refresh_actions()

    def build_menu(self) -> QMenu:
        self.refresh_actions()
        menu = QMenu(self)
        for group in MENU_LAYOUT:
            if not menu.isEmpty():
                menu.addSeparator()
            for key in group:
                menu.addAction(self.qactions[key])
        return menu

    def _tag_menu(self, pos: QPoint) -> None:
        menu = self.build_menu()
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        menu.popup(self.tag_view.viewport().mapToGlobal(pos))

    def _focus_filter(self) -> None:
        target = self.repo_filter if self.repo_filter.isVisible() else self.repo_name
        target.setFocus()
        target.selectAll()

    def _focus_repository_name(self) -> None:
        self.repo_name.setFocus()
        self.repo_name.selectAll()

    def copy_pull_command(self) -> None:
        info = self.detail_model.info
        if info is None or not info.pull_command:
            return
        self.copy_text(info.pull_command)
        self.statusMessage.emit(f"Copied: {info.pull_command}")

    # -- download ----------------------------------------------------------------------------

    def download_selected(self) -> None:
        """Ask for a folder, then download the manifest shown in the details."""
        self.spawn(self._download_flow())

    async def _download_flow(self) -> None:
        info = self.detail_model.info
        if info is None or self.client is None:
            return
        platform, problem = download_platform(info, self._selected_detail_key())
        if problem:
            self.show_message(problem, error=True)
            return
        folder = await self.choose_folder(f"Download {info.reference} to")
        if folder is None:
            return
        tag = "" if is_digest(self._detail_tag) else self._detail_tag
        self.request_download(info.repository, info.digest, folder, platform=platform, tag=tag)

    async def _ask_folder(self, caption: str) -> Path | None:
        dialog = QFileDialog(self, caption)
        dialog.setFileMode(QFileDialog.FileMode.Directory)
        dialog.setOption(QFileDialog.Option.ShowDirsOnly, True)
        # Not deleted on close: its answer is read after `finished`, then it is let go.
        dialog.open()
        try:
            (result,) = await wait_signal(dialog.finished)
            files = dialog.selectedFiles()
        finally:
            dialog.deleteLater()
        if result != QFileDialog.DialogCode.Accepted or not files:
            return None
        return Path(files[0])

    def request_download(
        self,
        repository: str,
        reference: str,
        folder: Path,
        *,
        platform: str | None = None,
        tag: str = "",
    ) -> str:
        """Ask the window to queue the download of `repository@reference` into `folder`.

        Returns the reference handed over: pinned by digest when `reference` is one, with
        `tag` kept for people to read (a tag moved while the download is paused must not mix
        two artifacts).
        """
        client = self.client
        if client is None:
            return ""
        full = download_reference(client.host, repository, reference, tag)
        self.downloadRequested.emit(full, str(folder), platform or "")
        self.show_message(f"Downloading {full.split('@')[0]} to {folder}: see Transfers")
        return full

    # -- delete ------------------------------------------------------------------------------

    def delete_selected(self) -> None:
        """Delete the selected tags' manifests after a confirmation naming every tag that
        goes with them."""
        tags = self.selected_tags()
        if tags:
            self.spawn(self.delete_tags(tags))

    async def delete_tags(self, tags: Sequence[str]) -> list[str]:
        """The delete flow; returns the tags removed (empty when refused or cancelled)."""
        client, repository = self.client, self.repository
        if client is None or not repository or not tags:
            return []
        self._deleting = True
        self.refresh_actions()
        self.show_message("Checking which tags share these manifests…")
        deleted: list[str] = []
        plan: DeletePlan | None = None
        try:
            every = self.tag_model.tags() if self.tag_model.complete else None
            plan = await plan_delete(client, repository, tags, every)
            if not await self.confirm_delete(plan):
                self.show_message("Nothing was deleted")
                return []
            await delete_manifests(client, plan, deleted)
            self.show_message(delete_outcome(plan, deleted))
        except DeleteRefused as exc:
            self._delete_refused = exc.sentence(window=True)
            self.show_message(exc.sentence(window=True), error=True)
        except HoistError as exc:
            self.show_message(exc.sentence(window=True), error=True)
        finally:
            self._deleting = False
            removed = [t for d in deleted for t in plan.digests[d]] if plan else []
            if removed and repository == self.repository:
                self.tag_model.remove_tags(removed)
                if self._detail_tag in removed:
                    self._clear_details()
            self.refresh_actions()
        return removed

    async def confirm_delete(self, plan: DeletePlan) -> bool:
        """Ask (window-modal, awaited); `confirm_box` is the open dialog (tests click it)."""
        question, explanation = delete_message(plan)
        box = ConfirmDialog("Delete tags", question, explanation, "&Delete", parent=self)
        box.setObjectName("confirm-delete")
        self.confirm_box = box
        try:
            return await box.ask()
        finally:
            self.confirm_box = None


def _registry_key(registry: RegistrySettings | RegistryClient | None) -> object:
    if registry is None:
        return None
    if isinstance(registry, RegistryClient):
        return ("client", id(registry))
    return ("settings", registry.url, registry.username, registry.insecure, registry.ca_bundle)


__all__ = ["BrowsePane"]
