"""PyInstaller entry for the bundled `hoist` command (the same as the `hoist` console script:
the command line, or the window when run bare on a desktop)."""

import sys

from gui.entry import main

if __name__ == "__main__":
    sys.exit(main())
