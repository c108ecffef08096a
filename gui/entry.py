"""The `hoist` command: the window when run bare on a desktop, else the command line.

Kept out of core (which never imports Qt) and importing nothing of Qt itself, so `hoist push`
works where PySide6 isn't installed.
"""

from __future__ import annotations

import os
import sys


def display_present() -> bool:
    """Whether there is a screen to show the window on."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def main() -> int:
    if len(sys.argv) == 1 and display_present():
        try:
            from hoist.gui.app import main as window
        except ImportError:  # installed without the window: the command line is all there is
            pass
        else:
            return window([])
    from hoist.core.cli import main as command_line

    return command_line()


if __name__ == "__main__":
    sys.exit(main())
