"""PyInstaller entry for the bundled `hoist-gui` window (the same as the `hoist-gui` gui script).

One option is handled here rather than in `hoist.gui.app`, because it checks
the bundle, not the app:
`hoist-gui --bundle-check` prints what the frozen app can reach (its version, the resources seen
through `importlib.resources`, the Qt plugins and image formats it can load, keyring's backends)
and exits non-zero when something the app needs is missing. `packaging/smoke_test.sh` runs it.
Every other argument goes to `hoist.gui.app.main` untouched.
"""

from __future__ import annotations

import sys


def bundle_check() -> int:
    import os
    from importlib import metadata, resources

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    from PySide6 import __version__ as pyside_version
    from PySide6.QtCore import QByteArray, QLibraryInfo
    from PySide6.QtGui import QGuiApplication, QIcon, QImageReader, QPixmap
    from PySide6.QtSvg import QSvgRenderer

    from hoist.core import __version__

    problems: list[str] = []
    print(f"hoist {__version__} (PySide6 {pyside_version}, frozen={getattr(sys, 'frozen', False)})")

    root = resources.files("hoist.resources")
    icons = sorted(p.name for p in root.joinpath("icons").iterdir() if p.name.endswith(".svg"))
    others = sorted(p.name for p in root.iterdir() if p.is_file() and not p.name.endswith(".py"))
    print(f"resources: {len(icons)} icons ({', '.join(icons)}); files: {', '.join(others) or '-'}")
    if "hoist.svg" not in icons:
        problems.append("resources/icons/hoist.svg is not reachable via importlib.resources")
    for name in ("hoist.desktop", "io.github.hoist.Hoist.metainfo.xml"):
        if name not in others:
            problems.append(f"resources/{name} is not in the bundle")

    app = QGuiApplication(sys.argv[:1])
    print(f"qt platform: {app.platformName()}")
    plugins = QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath)
    kinds = {}
    if os.path.isdir(plugins):
        for kind in sorted(os.listdir(plugins)):
            kinds[kind] = sorted(os.listdir(os.path.join(plugins, kind)))
    print("qt plugins: " + "; ".join(f"{k}: {' '.join(v)}" for k, v in kinds.items()))
    formats = sorted(bytes(f.data()).decode() for f in QImageReader.supportedImageFormats())
    print(f"image formats: {' '.join(formats)}")
    if "svg" not in formats:
        problems.append("Qt cannot read SVG images (imageformats/qsvg plugin missing)")

    if "hoist.svg" in icons:
        data = root.joinpath("icons", "hoist.svg").read_bytes()
        if not QSvgRenderer(QByteArray(data)).isValid():
            problems.append("hoist.svg does not render")
        # QIcon from an .svg file goes through the iconengines/svgicon plugin.
        with resources.as_file(root.joinpath("icons", "hoist.svg")) as path:
            pixmap: QPixmap = QIcon(str(path)).pixmap(64, 64)
            if pixmap.isNull():
                problems.append(
                    "QIcon cannot load an SVG file (iconengines/svgicon plugin missing)"
                )

    backends = sorted(ep.name for ep in metadata.entry_points(group="keyring.backends"))
    print(f"keyring backends: {' '.join(backends) or '-'}")
    if not backends:
        problems.append("keyring's backends are not registered (its metadata is not bundled)")

    for problem in problems:
        print(f"PROBLEM: {problem}", file=sys.stderr)
    print("bundle check: " + ("ok" if not problems else f"{len(problems)} problem(s)"))
    return 1 if problems else 0


def run() -> int:
    if sys.argv[1:] == ["--bundle-check"]:
        return bundle_check()
    from hoist.gui.app import main

    return main() or 0


if __name__ == "__main__":
    sys.exit(run())
