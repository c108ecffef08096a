"""A folder in which `hoist.core`, `hoist.gui` and `hoist.resources` are importable by path.

The repository keeps the folders the design card names (core/, gui/, resources/) and setuptools
maps them to `hoist.*` at install time (pyproject's package-dir). Tools that read source files
by path rather than through the installed package, mypy and PyInstaller's import analysis, can't
follow that mapping: they get `build/import-root/hoist/{core,gui,resources}`, links to the real
folders, so every module has its installed name.

Run as a script, it makes the folder and prints its path.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "gui", "resources")


def make_import_root(root: Path = ROOT) -> Path:
    base = root / "build" / "import-root"
    package = base / "hoist"
    package.mkdir(parents=True, exist_ok=True)
    for name in PACKAGES:
        link = package / name
        target = os.path.relpath(root / name, package)
        if link.is_symlink() and os.readlink(link) == target:
            continue
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target, target_is_directory=True)
    return base


if __name__ == "__main__":
    print(make_import_root())
