"""When closing the window quits: at once, or after asking while transfers run.

Closing pauses every running transfer (they resume next time); with transfers running the user
is asked first (pause everything and quit, keep running in the background, or cancel) unless
they said not to. The end of the desktop session quits without asking.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QMainWindow, QSystemTrayIcon

from hoist.core.transfer.queue import TransferQueue
from hoist.gui.settings.store import Settings
from hoist.gui.widgets.dialogs import QuitDialog


class QuitPolicy(QObject):
    """The window's close decision.

    Signals:
        asked(QuitDialog): the question was opened (tests answer it).
    """

    asked = Signal(object)

    def __init__(
        self,
        window: QMainWindow,
        queue: TransferQueue,
        settings: Settings,
        *,
        tray: Callable[[], QSystemTrayIcon | None],
        save_soon: Callable[[], None],
    ) -> None:
        super().__init__(window)
        self.host = window
        self.queue = queue
        self.settings = settings
        self.tray = tray
        self.save_soon = save_soon
        self.dialog: QuitDialog | None = None
        self.confirmed = False  # asked (or no need to): the next close quits

    def running_transfers(self) -> int:
        return sum(1 for item in self.queue.items if item.running)

    def may_close(self) -> bool:
        """True: close now (and from then on); False: the user is asked first."""
        if not self.confirmed and self.settings.ask_before_quit and self.running_transfers():
            self.ask()
            return False
        self.confirmed = True  # closing: a second close (a signal) changes nothing
        return True

    def ask(self) -> QuitDialog:
        """Quit with transfers running: ask (pause everything and quit, keep running,
        cancel). Non-blocking; the answer arrives in `_answered`."""
        if self.dialog is not None:
            self.dialog.raise_()
            return self.dialog
        dialog = QuitDialog(self.running_transfers(), self.host)
        self.dialog = dialog
        dialog.finished.connect(lambda _result, d=dialog: self._answered(d))
        dialog.open()
        self.asked.emit(dialog)
        return dialog

    def _answered(self, dialog: QuitDialog) -> None:
        self.dialog = None
        if dialog.choice == QuitDialog.PAUSE:
            if dialog.dont_ask:
                self.settings.ask_before_quit = False
                self.save_soon()  # written by the window's `aclose` at the latest
            self.confirmed = True
            self.host.close()
        elif dialog.choice == QuitDialog.KEEP:
            self.keep_running_in_background()

    def keep_running_in_background(self) -> None:
        """Out of the way while transfers go on: into the tray (a click brings the window
        back), or minimized where there is no tray."""
        tray = self.tray()
        if tray is not None and tray.isVisible():
            self.host.hide()
        else:
            self.host.showMinimized()

    def end_session(self) -> None:
        """The desktop session ends (logout, SIGTERM, SIGHUP): pause everything and quit
        without asking, as "Pause everything and quit" does."""
        self.confirmed = True
        if self.dialog is not None:
            self.dialog.reject()
        self.host.close()
