"""PyInstaller entry for the bundled `hoist` command: always the command line.

The installed `hoist` script (hoist.gui.entry) opens the window when run bare on a desktop; the
bundle has its own `hoist-gui` for that, and keeps this executable free of Qt (hoist.spec
excludes it), so it starts fast and works on machines without a display."""

import sys

from hoist.core.cli import main

if __name__ == "__main__":
    sys.exit(main())
