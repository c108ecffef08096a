"""The main window: registry selector, Transfers and Browse, adding, settings, errors, tray.

Services come in through `AppContext` (context.py); the window wires widgets to them and holds
no transfer logic of its own. Its other roles have their own modules: the bars and where each
action is shown (window_bars.py), the Add… pickers (adding.py), drops (drop_target.py), the
message bar and first-start banner (banners.py), whether closing quits or asks
(quit_policy.py), the queue's listeners (queue_listeners.py) and the help dialogs
(help_dialogs.py). Background work is a task kept in `self.tasks` until it ends; every
problem reaches the user as a sentence.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QObject, QSize, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDesktopServices,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QLabel,
    QMainWindow,
    QSystemTrayIcon,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from hoist.core.errors import HoistError, JournalUnwritable
from hoist.core.oci.reference import Reference, parse_reference
from hoist.core.registry.auth import Credentials
from hoist.core.registry.demo_registry import DemoRegistry
from hoist.core.transfer.download import plan_download
from hoist.core.transfer.model import Download
from hoist.core.transfer.queue import TransferItem
from hoist.gui.add.sheet import AddSheet
from hoist.gui.adding import (
    PICK_FILES,
    PICK_FOLDER,
    PICK_IMAGE,
    PICK_IMAGE_FOLDER,
    Picker,
    choose_sources,
    open_picker,
)
from hoist.gui.banners import DemoBanner, MessageBar
from hoist.gui.browse.pane import BrowsePane
from hoist.gui.context import AppContext, start_demo_registry
from hoist.gui.drop_target import DropTarget
from hoist.gui.help_dialogs import (
    HOW_RESUMING_WORKS,
    MessageDialog,
    keyboard_map,
    open_about,
    open_message,
)
from hoist.gui.queue_listeners import BrowseFollower, FinishNotifier
from hoist.gui.quit_policy import QuitPolicy
from hoist.gui.settings.dialog import SettingsDialog, TransferRateDialog
from hoist.gui.settings.registry_dialog import RegistryDialog
from hoist.gui.settings.store import (
    RegistrySettings,
    Settings,
)
from hoist.gui.transfers.actions import (
    ACCELERATORS,
    SHORTCUTS,
    TransferController,
    transfer_actions,
    with_accelerator,
)
from hoist.gui.transfers.replace_prompt import ReplaceAsker
from hoist.gui.transfers.rows import FILTERS, filter_label
from hoist.gui.transfers.transfer_model import TransferModel
from hoist.gui.transfers.view import TransferView
from hoist.gui.widgets import icons
from hoist.gui.widgets.clipboard import clipboard_copy
from hoist.gui.widgets.dialogs import ConfirmDialog, wait_signal
from hoist.gui.widgets.theme import PillTabBar
from hoist.gui.window_bars import (
    build_menus,
    build_status_bar,
    build_toolbar,
    make_action,
    totals_text,
)

log = logging.getLogger(__name__)


def open_folder(path: str) -> None:
    """Show a folder in the desktop's file manager."""
    if not Path(path).is_dir():
        raise HoistError(
            f"the folder {path} is not there any more",
            hint="It was moved or deleted after the download; download again to get the files",
        )
    if not QDesktopServices.openUrl(QUrl.fromLocalFile(path)):
        raise HoistError(
            f"no file manager opened {path}",
            hint="Open the folder yourself; its path is in the transfer's Target column",
        )


#: The size the window opens at on a large screen.
PREFERRED_SIZE = QSize(1100, 680)
#: Room left for the window manager's frame and title bar.
FRAME_ROOM = QSize(32, 48)


def opening_size(available: QSize) -> QSize:
    """The preferred size, or less on a small screen (a 1024×640 one holds the whole window)."""
    return PREFERRED_SIZE.boundedTo(available - FRAME_ROOM)


class MainWindow(QMainWindow):
    """Hoist's window.

    Signals:
        closing(): the window was closed; the app pauses transfers and quits.
        quit_asked(QuitDialog): Quit with transfers running opened this question.
        sheet_opened(AddSheet): an add sheet was shown (tests fill it in).
        error_shown(str): a sentence was shown to the user.
    """

    closing = Signal()
    quit_asked = Signal(object)
    sheet_opened = Signal(object)
    error_shown = Signal(str)

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.tasks: set[asyncio.Task[Any]] = set()
        self.add_sheet: AddSheet | None = None
        self.settings_dialog: SettingsDialog | None = None
        self.registry_dialog: RegistryDialog | None = None
        self.unjournaled_box: QDialog | None = None  # the open "go on without resume?" question
        ctx.queue.journal_unwritable = self.ask_go_on_without_journal
        self.last_error = ""
        self.notifications: list[tuple[str, str]] = []
        self.setObjectName("main-window")
        self.setWindowTitle("Hoist")
        self.setWindowIcon(icons.app_icon())
        self.resize(opening_size(self.screen().availableGeometry().size()))

        self.model = TransferModel(ctx.queue, self)
        self.controller = TransferController(
            ctx.queue,
            copy_text=clipboard_copy,
            show_in_browse=self.show_in_browse,
            on_error=self.show_error,
            open_folder=open_folder,
            confirm=self.confirm_cancel,
            ask_rate=self.ask_transfer_rate,
        )
        #: The open question (Cancel's), or the open rate dialog: tests answer them.
        self.confirm_box: ConfirmDialog | None = None
        self.rate_dialog: TransferRateDialog | None = None
        self.view = TransferView(self.model, self.controller)

        self._build_actions()
        self._build_central()
        self.toolbar, self.registry_combo = build_toolbar(self, self)
        self.registry_combo.activated.connect(self._registry_chosen)
        build_menus(self, self.menuBar(), self.view)
        self.totals_label, self.rate_box = build_status_bar(
            self.statusBar(), self.ctx.settings.rate_limit
        )
        self.rate_box.valueChanged.connect(self._rate_changed)
        self._build_tray()
        self.quit_policy = QuitPolicy(
            self, ctx.queue, ctx.settings,
            tray=lambda: self.tray, save_soon=lambda: self._save_timer.start(),
        )  # fmt: skip
        self.quit_policy.asked.connect(self.quit_asked.emit)

        self.notifier = FinishNotifier(self._notify)
        ctx.queue.listeners.append(self.notifier)
        # A download refused to replace files of the user's own: ask, and run it again if yes.
        self.replace_asker = ReplaceAsker(ctx.queue.replace_and_retry, self)
        ctx.queue.listeners.append(self.replace_asker)
        self.browse_follower = BrowseFollower(self.browse)
        ctx.queue.listeners.append(self.browse_follower)
        self.model.totals_changed.connect(self._update_totals)
        self.model.totals_changed.connect(self._update_global_actions)
        self.model.counts_changed.connect(self._update_filter_labels)
        self.model.rowsInserted.connect(self._update_empty_state)
        self.model.rowsRemoved.connect(self._update_empty_state)
        self._save_timer = QTimer(self)
        self._save_timer.setSingleShot(True)
        self._save_timer.setInterval(800)
        self._save_timer.timeout.connect(self.save_settings)
        self._save_pending = False

        self._fill_registry_combo()  # login states follow once `refresh_registries` ran
        self._update_totals()
        self._update_global_actions()
        self._update_filter_labels(self.model.counts())
        self._update_empty_state()
        self.update_demo_banner()
        for problem in ctx.problems:
            self.show_error(problem)
        # An explicit minimum: the layout then never changes the window's size limits after
        # it is shown (banners and messages come and go without the window jumping).
        self.setMinimumSize(720, 420)

    # -- construction ------------------------------------------------------------------------

    def _build_actions(self) -> None:
        def act(text: str, slot: Callable[[], Any], *args: Any) -> QAction:
            return make_action(self, text, slot, *args)

        self.add_files_action = act(
            "Add &files…", lambda: self.pick(PICK_FILES), "Ctrl+O", "add-files",
            "Push files (or drop them on the window)",
        )  # fmt: skip
        self.add_folder_action = act(
            "Add f&older…", lambda: self.pick(PICK_FOLDER), "Ctrl+Shift+O", None,
            "Push a folder as its files",
        )  # fmt: skip
        self.add_image_action = act(
            "Add &image…", lambda: self.pick(PICK_IMAGE), "Ctrl+I", "add-image",
            "Push a container image (docker save tarball, OCI archive or layout)",
        )  # fmt: skip
        self.add_layout_action = act(
            "Add image folder (OCI &layout)…", lambda: self.pick(PICK_IMAGE_FOLDER)
        )
        self.pause_all_action = act(
            with_accelerator("Pause all", ACCELERATORS["pause_all"]),
            self.controller.pause_all, SHORTCUTS["pause_all"], "pause",
        )  # fmt: skip
        self.resume_all_action = act(
            with_accelerator("Resume all", ACCELERATORS["resume_all"]),
            self.controller.resume_all, SHORTCUTS["resume_all"], "resume",
        )  # fmt: skip
        self.settings_action = act(
            "&Settings…", self.open_settings, QKeySequence.StandardKey.Preferences, "settings"
        )
        if self.settings_action.shortcut().isEmpty():
            self.settings_action.setShortcut(QKeySequence("Ctrl+,"))
        self.add_registry_action = act(
            "Add &registry…", self.add_registry, None, None,
            "Add a registry (its password goes to the system keyring)",
        )  # fmt: skip
        self.edit_registry_action = act(
            "&Edit registry…", self.edit_registry, None, None, "Address, username, password, TLS"
        )
        self.about_action = act("&About Hoist", self.about)
        self.resuming_help_action = act("&How resuming works", self.resuming_help)
        self.keys_help_action = act(
            "&Keyboard shortcuts", self.keys_help, QKeySequence.StandardKey.HelpContents
        )
        self.quit_action = act("&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.view.global_actions = {
            "pause_all": self.pause_all_action,
            "resume_all": self.resume_all_action,
        }

    def _build_central(self) -> None:
        self.banner = DemoBanner(self)
        self.banner.demo_button.clicked.connect(lambda: self.spawn(self.start_demo()))
        self.banner.add_button.clicked.connect(self.add_registry)
        self.banner.close_button.clicked.connect(self.decline_demo)

        self.filter_bar = PillTabBar(self)
        self.filter_bar.setObjectName("status-filter")
        for name in FILTERS:
            index = self.filter_bar.addTab(filter_label(name, {}))
            self.filter_bar.setTabData(index, name)
        self.filter_bar.currentChanged.connect(
            lambda i: self.view.proxy.set_status_filter(str(self.filter_bar.tabData(i)))
        )
        # The empty list says what to do, in its middle (not in a strip under a blank list).
        self.empty_hint = QLabel(
            "Drop files, folders or container images here, or use Add files… or Add image…\n"
            "Transfers survive restarts: close Hoist at any time and resume later.",
            self.view.viewport(),
        )
        self.empty_hint.setObjectName("empty-hint")
        self.empty_hint.setWordWrap(True)
        self.empty_hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_hint.setEnabled(False)  # drawn in the palette's disabled text colour
        self.empty_hint.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.view.viewport().installEventFilter(self)

        transfers = QWidget(self)
        layout = QVBoxLayout(transfers)
        layout.setContentsMargins(8, 8, 8, 4)
        layout.setSpacing(6)
        layout.addWidget(self.filter_bar)
        layout.addWidget(self.view, 1)

        self.tabs = QTabWidget(self)
        self.tabs.setObjectName("areas")
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(transfers, "Transfers")
        self.browse = self._make_browse_pane()
        self.tabs.addTab(self.browse, "Browse")

        self.message_bar = MessageBar(self)
        self.message_label = self.message_bar.label

        central = QWidget(self)
        outer = QVBoxLayout(central)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.message_bar)
        outer.addWidget(self.banner)
        outer.addWidget(self.tabs, 1)
        self.setCentralWidget(central)

        self.drops = DropTarget(self, self.add_sources)

    def _make_browse_pane(self) -> BrowsePane:
        # No registry yet: `show_selected_registry` connects it once the app started
        # (credentials looked up, the event loop running).
        pane = BrowsePane(self, credentials=self.ctx.credentials)
        pane.statusMessage.connect(lambda text: self.statusBar().showMessage(text, 10000))
        pane.downloadRequested.connect(self.download_from_browse)
        return pane

    def _build_tray(self) -> None:
        self.tray: QSystemTrayIcon | None = None
        if QSystemTrayIcon.isSystemTrayAvailable():
            self.tray = QSystemTrayIcon(icons.app_icon(), self)
            self.tray.setToolTip("Hoist")
            self.tray.activated.connect(self._show_from_tray)
            self.tray.show()

    def _show_from_tray(self, _reason: QSystemTrayIcon.ActivationReason) -> None:
        self.showNormal()
        self.raise_()
        self.activateWindow()

    # -- background tasks --------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run `coro` in the background, keeping a reference; failures become sentences."""
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if isinstance(exc, HoistError):
            self.show_error(exc.sentence(window=True))
        elif exc is not None:
            # A bug: the excepthook shows a sentence and logs the traceback.
            sys.excepthook(type(exc), exc, exc.__traceback__)

    # -- errors and notifications ------------------------------------------------------------

    async def ask_go_on_without_journal(self, item: TransferItem, exc: JournalUnwritable) -> bool:
        """Hoist can't save where a transfer stands (a full disk): ask whether to go on with it
        all the same, knowing an interruption means starting over (the queue awaits this)."""
        box = ConfirmDialog(
            "Transfer can't be resumed",
            f"Go on with {item.transfer.name} without being able to resume it?",
            f"{exc.message}. If it is interrupted (quit, crash, a network gone for good), it "
            "starts over from the beginning.",
            "&Go on",
            parent=self,
        )
        box.setObjectName("confirm-unjournaled")
        self.unjournaled_box = box
        try:
            return await box.ask()
        finally:
            self.unjournaled_box = None

    async def confirm_cancel(self, question: str, detail: str) -> bool:
        """Cancel's question: what will be lost, with Keep (the default) beside Discard."""
        box = ConfirmDialog("Cancel transfer", question, detail, "&Discard", parent=self)
        box.setObjectName("confirm-cancel")
        box.cancel_button.setText("&Keep")
        self.confirm_box = box
        try:
            return await box.ask()
        finally:
            self.confirm_box = None

    async def ask_transfer_rate(self, item: TransferItem) -> int | None:
        """A transfer's own cap (bytes/s, 0: none), or None when the user cancels."""
        dialog = TransferRateDialog(item.transfer.name, item.limiter.rate, self)
        self.rate_dialog = dialog
        dialog.open()
        try:
            (result,) = await wait_signal(dialog.finished)
            return dialog.bytes_per_second() if result == QDialog.DialogCode.Accepted else None
        finally:
            self.rate_dialog = None
            dialog.deleteLater()

    def show_error(self, text: str) -> None:
        """Tell the user, without blocking: the message bar at the top (until dismissed)."""
        self.last_error = text
        self.message_bar.say(text)
        self.error_shown.emit(text)

    def dismiss_error(self) -> None:
        self.message_bar.dismiss()

    def _notify(self, title: str, message: str, failed: bool) -> None:
        self.notifications.append((title, message))
        if self.tray is not None and self.tray.supportsMessages():
            kind = (
                QSystemTrayIcon.MessageIcon.Critical
                if failed
                else QSystemTrayIcon.MessageIcon.Information
            )
            self.tray.showMessage(title, message, kind, 10000)
        else:
            self.statusBar().showMessage(f"{title}: {message}", 15000)

    # -- registries --------------------------------------------------------------------------

    def refresh_registries(self) -> None:
        """Fill the selector from settings, then look up each registry's login state."""
        self._fill_registry_combo()
        for reg in self.ctx.settings.registries:
            if reg.valid:
                self.spawn(self._refresh_login(reg))

    async def _refresh_login(self, reg: RegistrySettings) -> None:
        await self.ctx.credentials.refresh(reg)
        # A new login or TLS choice applies to the next transfer to that registry.
        await self.ctx.queue.forget_clients(reg.host)
        self._fill_registry_combo()

    def _fill_registry_combo(self) -> None:
        combo = self.registry_combo
        combo.blockSignals(True)
        combo.clear()
        settings = self.ctx.settings
        for reg in settings.registries:
            combo.addItem(f"{reg.name} — {self.ctx.credentials.login_state(reg)}", reg.name)
            combo.setItemData(combo.count() - 1, reg.url, Qt.ItemDataRole.ToolTipRole)
        if not settings.registries:
            combo.addItem("No registry", None)
        self.edit_registry_action.setEnabled(bool(settings.registries))
        selected = settings.selected
        if selected is not None:
            combo.setCurrentIndex(max(0, combo.findData(selected.name)))
        combo.blockSignals(False)

    def _registry_chosen(self, index: int) -> None:
        name = self.registry_combo.itemData(index)
        if name is None:
            return
        self.ctx.settings.selected_registry = str(name)
        self._save_timer.start()
        self.show_selected_registry()

    def show_selected_registry(self) -> None:
        """Point the Browse area at the selected registry (needs the running event loop)."""
        self.browse.set_registry(self.ctx.settings.selected)

    def update_demo_banner(self) -> None:
        settings = self.ctx.settings
        self.banner.offer(
            shown=not settings.registries and not settings.demo_declined,
            demo_available=DemoRegistry.available(),
        )

    def add_registry(self) -> None:
        self._open_registry_dialog(None)

    def edit_registry(self) -> None:
        self._open_registry_dialog(self.ctx.settings.selected)

    def _open_registry_dialog(self, registry: RegistrySettings | None) -> None:
        """The registry dialog (it stores the password in the keyring)."""
        dialog = RegistryDialog(self, registry)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.saved.connect(
            lambda entry, d=dialog, old=registry: self.registry_saved(
                entry, old, d.session_credentials
            )
        )
        self.registry_dialog = dialog
        dialog.open()

    def registry_saved(
        self,
        entry: RegistrySettings,
        old: RegistrySettings | None,
        session: Credentials | None = None,
    ) -> None:
        """Put an added or edited registry in settings, select it, and save."""
        settings = self.ctx.settings
        if old is not None and old in settings.registries:
            settings.registries[settings.registries.index(old)] = entry
        else:
            entry.name = settings.unique_name(entry.name)
            settings.registries.append(entry)
        settings.selected_registry = entry.name
        if session is not None and entry.valid:
            self.ctx.credentials.remember(entry.host, session)
        elif entry.valid:
            self.ctx.credentials.problems.pop(entry.host, None)
        self.refresh_registries()
        self.update_demo_banner()
        self._registry_chosen(self.registry_combo.currentIndex())
        self.save_settings()
        if entry.valid:
            self.spawn(self._use_new_credentials(entry))

    async def _use_new_credentials(self, entry: RegistrySettings) -> None:
        """Credentials change where they are used, at once: Browse reconnects with them, and
        transfers that start from now on open new connections."""
        await self.ctx.credentials.refresh(entry)
        await self.ctx.queue.forget_clients()
        if self.ctx.settings.selected == entry:
            self.browse.set_registry(entry, reconnect=True)

    def decline_demo(self) -> None:
        self.ctx.settings.demo_declined = True
        self.banner.hide()
        self._save_timer.start()

    async def start_demo(self) -> RegistrySettings:
        """Start the local demo registry and add it as "Local registry" (then select it)."""
        self.banner.set_starting(True)
        try:
            registry = await start_demo_registry(self.ctx)
        finally:
            self.banner.set_starting(False)
            self.refresh_registries()
            self.update_demo_banner()
        self.show_selected_registry()
        return registry

    def show_in_browse(self, ref: Reference) -> None:
        """Switch to Browse at `ref` (the pane decides how far it can follow)."""
        self.tabs.setCurrentWidget(self.browse)
        reg = self.ctx.settings.registry_for_host(ref.registry)
        if reg is not None:
            at = self.registry_combo.findData(reg.name)
            if at >= 0:
                self.registry_combo.setCurrentIndex(at)
                self._registry_chosen(at)
        self.browse.show_reference(str(ref))

    def download_from_browse(self, reference: str, folder: str, platform: str = "") -> None:
        """Queue Browse's download, and show in Browse how it goes."""
        self.browse_follower.follow(self.queue_download(reference, folder, platform))

    def queue_download(self, reference: str, folder: str, platform: str = "") -> TransferItem:
        """Queue a download the Browse area asked for: it runs, pauses and resumes in
        Transfers like a push, and the journal keeps it across restarts."""
        source = parse_reference(reference)
        registry = self.ctx.settings.registry_for_host(source.registry)
        transfer = plan_download(
            source,
            Path(folder),
            platform=platform or None,
            parallel=self.ctx.settings.parallel_blobs,
            plain_http=registry.plain_http if registry is not None else None,
        )
        return self.ctx.queue.add(transfer)

    # -- adding ------------------------------------------------------------------------------

    def add_sources(self, paths: list[Path], *, kind: str | None = None) -> None:
        """Open the add sheet for `paths` (decides image or files in a worker thread)."""
        if paths:
            self.spawn(self.open_add_sheet(paths, kind=kind))

    async def open_add_sheet(self, paths: list[Path], *, kind: str | None = None) -> AddSheet:
        choice = await asyncio.to_thread(choose_sources, paths, kind)
        if self.add_sheet is not None:
            self.add_sheet.reject()
        sheet = AddSheet(
            choice,
            settings=self.ctx.settings,
            queue=self.ctx.queue,
            credentials=self.ctx.credentials,
            registry=self.ctx.settings.selected_registry or None,
            parent=self,
        )
        sheet.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        sheet.queued.connect(self._queued)
        sheet.finished.connect(lambda _r, s=sheet: self._sheet_closed(s))
        self.add_sheet = sheet
        sheet.open()
        self.sheet_opened.emit(sheet)
        return sheet

    def _sheet_closed(self, sheet: AddSheet) -> None:
        if self.add_sheet is sheet:
            self.add_sheet = None
        if sheet.item is not None:
            # Qt gave focus back to where it was before the sheet (the filter bar): the new
            # row is where the next key goes (Ctrl+P, Ctrl+R, Shift+Del).
            self.tabs.setCurrentIndex(0)
            self.view.select_transfer(sheet.item.id)
            self.view.setFocus(Qt.FocusReason.OtherFocusReason)

    def _queued(self, item: TransferItem) -> None:
        self.tabs.setCurrentIndex(0)
        self.view.select_transfer(item.id)
        self.statusBar().showMessage(
            f"Queued {item.transfer.name} → {item.transfer.reference}", 8000
        )
        self.save_settings()

    def pick(self, picker: Picker) -> QFileDialog:
        """An Add… dialog; what the user chooses opens the add sheet."""
        return open_picker(self, picker, lambda paths, kind: self.add_sources(paths, kind=kind))

    # -- settings ----------------------------------------------------------------------------

    def open_settings(self) -> None:
        if self.settings_dialog is not None:
            self.settings_dialog.raise_()
            return
        dialog = SettingsDialog(self.ctx.settings, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.accepted.connect(lambda d=dialog: self.apply_settings(d.settings()))
        dialog.finished.connect(lambda _r: setattr(self, "settings_dialog", None))
        self.settings_dialog = dialog
        dialog.open()

    def apply_settings(self, new: Settings) -> None:
        """Use edited settings at once (rate and concurrency apply to running transfers)."""
        ctx = self.ctx
        for name, value in vars(new).items():
            setattr(ctx.settings, name, value)
        ctx.queue.max_active = new.max_active
        ctx.queue.limiter.rate = new.rate_limit
        self.rate_box.blockSignals(True)
        self.rate_box.set_bytes_per_second(new.rate_limit)
        self.rate_box.blockSignals(False)
        self.refresh_registries()
        self.update_demo_banner()
        self.show_selected_registry()
        self.save_settings()

    def _rate_changed(self, _value: float) -> None:
        rate = self.rate_box.bytes_per_second()
        self.ctx.queue.limiter.rate = rate  # applies to the very next block of every upload
        self.ctx.settings.rate_limit = rate
        self._save_timer.start()
        self._update_totals()

    def save_settings(self) -> None:
        self._save_timer.stop()
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # the loop already stopped (quitting) while the timer ran
            self._save_pending = True  # `aclose` writes them
            return
        self.spawn(self.ctx.save_settings())

    # -- status ------------------------------------------------------------------------------

    def _update_totals(self) -> None:
        done, total, rate, running = self.model.totals()
        downloading = sum(
            1 for i in self.ctx.queue.items if i.running and isinstance(i.transfer, Download)
        )
        self.totals_label.setText(
            totals_text(
                self.model.counts(), done, total, rate, running, downloading,
                self.ctx.queue.limiter.rate,
            )
        )  # fmt: skip

    def _update_global_actions(self) -> None:
        specs = transfer_actions([], self.ctx.queue.items, self.controller)
        self.pause_all_action.setEnabled(specs["pause_all"].enabled)
        self.resume_all_action.setEnabled(specs["resume_all"].enabled)

    def _update_filter_labels(self, counts: dict[str, int]) -> None:
        for i in range(self.filter_bar.count()):
            self.filter_bar.setTabText(i, filter_label(str(self.filter_bar.tabData(i)), counts))

    def _update_empty_state(self) -> None:
        self.empty_hint.setVisible(self.model.rowCount() == 0)
        self._place_empty_hint()
        self._update_global_actions()

    def _place_empty_hint(self) -> None:
        """The hint fills the list's visible area (its text centred there)."""
        margin = 24
        area = self.view.viewport().rect()
        self.empty_hint.setGeometry(area.adjusted(margin, margin, -margin, -margin))

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.view.viewport() and event.type() == QEvent.Type.Resize:
            self._place_empty_hint()
        return super().eventFilter(watched, event)

    # -- misc --------------------------------------------------------------------------------

    def resuming_help(self) -> MessageDialog:
        return open_message(self, "How resuming works", "How Hoist resumes", HOW_RESUMING_WORKS)

    def keys_help(self) -> MessageDialog:
        lines = [f"{keys}\t{what}" for keys, what in self.keyboard_map()]
        return open_message(self, "Keyboard shortcuts", "Keyboard shortcuts", "\n".join(lines))

    def keyboard_map(self) -> list[tuple[str, str]]:
        """(keys, what they do) for every action with a shortcut: window, Transfers, Browse."""
        return keyboard_map([(self, ""), (self.view, ""), (self.browse, "Browse: ")])

    def about(self) -> MessageDialog:
        return open_about(self)

    def changeEvent(self, event: QEvent) -> None:
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ThemeChange):
            icons.clear_cache()  # toolbar icons are tinted with the palette's text colour
            for action in self.findChildren(QAction):
                name = action.data()
                if isinstance(name, str) and name:
                    action.setIcon(icons.icon(name))
        super().changeEvent(event)

    async def aclose(self) -> None:
        """Stop the window's background work (the Browse area's too); the app awaits this
        after the window closed, before pausing the queue. A settings change still waiting
        for its delayed save is written now."""
        if self._save_pending:
            self._save_pending = False
            self._save_timer.stop()
            await self.ctx.save_settings()
        await self.browse.aclose()
        current = asyncio.current_task()
        pending = [t for t in self.tasks if t is not current and not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)

    # -- quitting ----------------------------------------------------------------------------

    def end_session(self) -> None:
        """The desktop session ends: pause everything and quit without asking."""
        self.quit_policy.end_session()

    def closeEvent(self, event: QCloseEvent) -> None:
        """Closing quits: running transfers are paused (the app gives them a bounded wait to
        end their streams and journal what the registry acknowledged) and resume next time.
        With transfers running, the user is asked first unless they said not to."""
        if not self.quit_policy.may_close():
            event.ignore()
            return
        self._save_pending = self._save_pending or self._save_timer.isActive()
        self._save_timer.stop()  # `aclose` saves instead
        self.model.detach()
        for listener in (
            self.notifier,
            self.replace_asker,
            self.browse_follower,
        ):
            if listener in self.ctx.queue.listeners:
                self.ctx.queue.listeners.remove(listener)
        if self.add_sheet is not None:
            self.add_sheet.reject()
        if self.tray is not None:
            self.tray.hide()
        event.accept()
        self.closing.emit()


__all__ = ["MainWindow", "open_folder", "opening_size"]
