"""The Browse area's actions as data: what each says, its key, and whether it can run now.

`browse_actions()` is a plain function of the pane's state (tested without widgets), as
`hoist.gui.transfers.actions` does for transfers; the pane turns it into QActions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

# -- actions as data ------------------------------------------------------------------------


class BrowseAction(NamedTuple):
    """One action: its label, key, whether it can run now, and why not (a tooltip)."""

    label: str
    shortcut: str
    enabled: bool
    why_not: str = ""


SHORTCUTS = {
    "refresh": "F5",
    "filter": "Ctrl+F",
    "open_repository": "Ctrl+L",
    "copy_pull": "Ctrl+Shift+C",
    "download": "Ctrl+D",
    "delete": "Del",
}
#: Actions whose keys work anywhere in the window while Browse is shown.
WINDOW_WIDE = ("refresh", "filter")
#: Order of the tag list's context menu.
MENU_LAYOUT = (("copy_pull", "download"), ("delete",), ("refresh",))


@dataclass(frozen=True)
class PaneState:
    """What the actions depend on (the pane builds one from its widgets)."""

    connected: bool = False
    repository: str = ""
    selected_tags: tuple[str, ...] = ()
    details_shown: bool = False
    pull_command: str = ""
    deleting: bool = False
    delete_refused: str = ""


def browse_actions(state: PaneState) -> dict[str, BrowseAction]:
    """Every action of the Browse area for `state`, as data (ordered as in the menu)."""
    tags = state.selected_tags
    no_tag = "Choose a tag first"
    if not tags:
        delete_label = "Delete tag…"
    elif len(tags) == 1:
        delete_label = f"Delete {tags[0]}…"
    else:
        delete_label = f"Delete {len(tags)} tags…"
    delete_why = (
        state.delete_refused
        or (no_tag if not tags else "")
        or ("Deleting…" if state.deleting else "")
    )
    download_why = "" if state.details_shown else no_tag
    return {
        "refresh": BrowseAction("Refresh", SHORTCUTS["refresh"], state.connected,
                                "" if state.connected else "Choose a registry first"),
        "filter": BrowseAction("Filter repositories", SHORTCUTS["filter"], state.connected),
        "open_repository": BrowseAction(
            "Open repository by name", SHORTCUTS["open_repository"], state.connected
        ),
        "copy_pull": BrowseAction(
            "Copy pull command", SHORTCUTS["copy_pull"], bool(state.pull_command),
            "" if state.pull_command else no_tag,
        ),
        "download": BrowseAction("Download…", SHORTCUTS["download"], not download_why,
                                 download_why),
        "delete": BrowseAction(delete_label, SHORTCUTS["delete"], not delete_why, delete_why),
    }  # fmt: skip
