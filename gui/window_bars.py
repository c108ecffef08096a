"""The window's menu bar, toolbar and status bar, built from the actions the window made.

The window decides what each action does (`make_action` binds a slot); this module decides
where each one is shown, and what the status bar says of the transfers as a whole.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QLabel,
    QMainWindow,
    QMenuBar,
    QSizePolicy,
    QStatusBar,
    QToolBar,
    QWidget,
)

from hoist.core.units import format_rate, format_size
from hoist.gui.settings.dialog import RateLimitBox
from hoist.gui.transfers.actions import MENU_LAYOUT
from hoist.gui.transfers.view import TransferView
from hoist.gui.widgets import icons


class WindowActions(Protocol):
    """The window's own actions, as the bars show them."""

    add_files_action: QAction
    add_folder_action: QAction
    add_image_action: QAction
    add_layout_action: QAction
    pause_all_action: QAction
    resume_all_action: QAction
    settings_action: QAction
    add_registry_action: QAction
    edit_registry_action: QAction
    about_action: QAction
    resuming_help_action: QAction
    keys_help_action: QAction
    quit_action: QAction


def make_action(
    owner: QWidget, text: str, slot: Callable[[], Any],
    shortcut: str | QKeySequence | QKeySequence.StandardKey | None = None,
    icon: str | None = None, tip: str = "",
) -> QAction:  # fmt: skip
    """An action of `owner` (its shortcut works wherever `owner` has focus) running `slot`.

    The icon's name is kept in the action's data: a palette change tints it again.
    """
    action = QAction(text, owner)
    if shortcut:
        action.setShortcut(QKeySequence(shortcut))
    if icon:
        action.setIcon(icons.icon(icon))
        action.setData(icon)
    if tip:
        action.setToolTip(tip)
        action.setStatusTip(tip)
    action.triggered.connect(lambda _checked=False: slot())
    owner.addAction(action)
    return action


def build_toolbar(window: QMainWindow, actions: WindowActions) -> tuple[QToolBar, QComboBox]:
    """The main toolbar, with the registry selector at its right end."""
    bar = QToolBar("Main", window)
    bar.setObjectName("main-toolbar")
    bar.setMovable(False)
    bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    for action in (actions.add_files_action, actions.add_image_action):
        bar.addAction(action)
    bar.addSeparator()
    bar.addAction(actions.pause_all_action)
    bar.addAction(actions.resume_all_action)
    bar.addSeparator()
    bar.addAction(actions.settings_action)
    spacer = QWidget(bar)
    spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
    bar.addWidget(spacer)
    bar.addWidget(QLabel("Registry: ", bar))
    combo = QComboBox(bar)
    combo.setObjectName("registry-selector")
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
    # A long name is elided rather than pushing Edit registry off a 1024-pixel screen.
    combo.setMaximumWidth(
        combo.fontMetrics().horizontalAdvance("Team registry — signed in as ") + 120
    )
    combo.currentTextChanged.connect(combo.setToolTip)
    bar.addWidget(combo)
    bar.addAction(actions.edit_registry_action)
    window.addToolBar(bar)
    return bar, combo


def build_menus(actions: WindowActions, menus: QMenuBar, view: TransferView) -> None:
    """File, Transfers (the list's per-item actions, then pause/resume all) and Help."""
    file_menu = menus.addMenu("&File")
    for action in (actions.add_files_action, actions.add_folder_action,
                   actions.add_image_action, actions.add_layout_action):  # fmt: skip
        file_menu.addAction(action)
    file_menu.addSeparator()
    file_menu.addAction(actions.add_registry_action)
    file_menu.addAction(actions.edit_registry_action)
    file_menu.addAction(actions.settings_action)
    file_menu.addSeparator()
    file_menu.addAction(actions.quit_action)
    transfers_menu = menus.addMenu("&Transfers")
    transfers_menu.aboutToShow.connect(view.refresh_actions)
    for group in MENU_LAYOUT[:-1]:  # the per-item groups; pause/resume all follow
        for key in group:
            transfers_menu.addAction(view.qactions[key])
        transfers_menu.addSeparator()
    transfers_menu.addAction(actions.pause_all_action)
    transfers_menu.addAction(actions.resume_all_action)
    help_menu = menus.addMenu("&Help")
    help_menu.addAction(actions.resuming_help_action)
    help_menu.addAction(actions.keys_help_action)
    help_menu.addSeparator()
    help_menu.addAction(actions.about_action)


def build_status_bar(bar: QStatusBar, rate_limit: int) -> tuple[QLabel, RateLimitBox]:
    """The totals on the left, the upload limit (set to `rate_limit`) on the right."""
    bar.setSizeGripEnabled(False)
    totals = QLabel(bar)
    totals.setObjectName("totals")
    totals.setContentsMargins(8, 0, 0, 0)
    bar.addWidget(totals, 1)
    limit_label = QLabel("Upload limit:", bar)
    limit_label.setContentsMargins(0, 0, 2, 0)
    bar.addPermanentWidget(limit_label)
    rate_box = RateLimitBox(bar)
    rate_box.setObjectName("rate-limit")
    rate_box.set_bytes_per_second(rate_limit)
    bar.addPermanentWidget(rate_box)
    edge = QWidget(bar)  # keeps the box's arrows off the window's edge
    edge.setFixedWidth(4)
    bar.addPermanentWidget(edge)
    return totals, rate_box


def totals_text(
    counts: dict[str, int], done: int, total: int, rate: float, running: int,
    downloading: int, limit: int,
) -> str:  # fmt: skip
    """What the status bar says of all transfers: bytes, who moves them, paused, failed."""
    if not counts["all"]:
        text = "No transfers"
    elif total == 0 or (done >= total and not running):
        text = f"{counts['done']} done" + (
            f", {counts['failed']} failed" if counts["failed"] else ""
        )
    else:
        text = f"{format_size(done)} of {format_size(total)}"
        if running:
            down = downloading
            moving = [f"{running - down} uploading"] if running > down else []
            moving += [f"{down} downloading"] if down else []
            text += f" · {', '.join(moving)} at {format_rate(rate)}"
        if counts["paused"]:
            text += f" · {counts['paused']} paused"
        if counts["failed"]:
            text += f" · {counts['failed']} failed"
    if limit:
        text += f" · uploads limited to {format_rate(limit)}"
    return text
