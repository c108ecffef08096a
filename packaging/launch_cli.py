"""PyInstaller entry for the bundled `hoist` command (the same as the `hoist` console script)."""

import sys

from core.cli import main

if __name__ == "__main__":
    sys.exit(main())
