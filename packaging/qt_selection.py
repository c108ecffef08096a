"""Which parts of Qt the Hoist bundle keeps: read by hoist.spec and by tests/test_packaging.py.

PyInstaller's PySide6 hooks collect every plugin type a Qt module may use (QtGui alone brings
platforms, themes, input contexts, eglfs, VNC, every image format, ...) and every translation.
Hoist draws its own icons from SVG and is not translated, so the spec keeps only the plugins
named here and drops the Qt translations; the Qt and system libraries that only dropped plugins
needed are dropped with them (see `prune_unreachable` in hoist.spec).

Plain data, no PyInstaller or Qt import, so tests can load it cheaply.
"""

from __future__ import annotations

import sys

#: plugin type -> plugin names kept (the file name without `lib` and extension); None keeps
#: every plugin of that type. A type not listed is dropped whole.
COMMON_PLUGINS: dict[str, set[str] | None] = {
    "platforms": {"qoffscreen"},  # headless: the smoke test and CI
    "imageformats": {"qsvg"},  # QImage/QPixmap from .svg
    "iconengines": {"qsvgicon"},  # QIcon from .svg at any size
}

LINUX_PLUGINS: dict[str, set[str] | None] = {
    "platforms": {"qxcb", "qwayland"},
    # Native file dialogs through the XDG desktop portal (works on GNOME, KDE, and in Flatpak)
    # without bundling GTK: the gtk3 theme would pull in libgtk-3 and its dependencies.
    "platformthemes": {"qxdgdesktopportal"},
    # Dead keys / the Compose key on X11, and IBus input methods (typing non-ASCII text).
    "platforminputcontexts": {
        "composeplatforminputcontextplugin",
        "ibusplatforminputcontextplugin",
    },
    # A Wayland window needs a shell integration (xdg-shell) and, where the compositor draws no
    # title bars (GNOME), client-side decorations.
    "wayland-shell-integration": {"xdg-shell"},
    "wayland-decoration-client": None,
}

WINDOWS_PLUGINS: dict[str, set[str] | None] = {
    "platforms": {"qwindows"},
    "styles": {"qmodernwindowsstyle"},
}

MACOS_PLUGINS: dict[str, set[str] | None] = {
    "platforms": {"qcocoa"},
    "styles": {"qmacstyle"},
}

#: Qt for Python modules the bundle never contains, even if something imports them. Hoist's GUI
#: uses QtCore, QtGui, QtWidgets and QtSvg (QtSvgWidgets and QtConcurrent would be fine too).
#: Hoist talks HTTP through httpx, so QtNetwork is out (PySide6/__init__.py imports it for its
#: Windows OpenSSL set-up, inside `try/except ImportError`, which would drag it and its TLS and
#: network-information plugins in); QtDBus's *bindings* are out too (libQt6DBus itself stays:
#: QtGui links it). tests/test_packaging.py fails when gui/
#: imports one of these, so the bundle cannot silently lose a module the window uses.
EXCLUDED_QT_MODULES: tuple[str, ...] = (
    "Qt3DAnimation",
    "Qt3DCore",
    "Qt3DExtras",
    "Qt3DInput",
    "Qt3DLogic",
    "Qt3DRender",
    "QtAxContainer",
    "QtBluetooth",
    "QtCharts",
    "QtDataVisualization",
    "QtDBus",
    "QtDesigner",
    "QtGraphs",
    "QtGraphsWidgets",
    "QtHelp",
    "QtHttpServer",
    "QtLabsStyleKit",
    "QtLocation",
    "QtMultimedia",
    "QtMultimediaWidgets",
    "QtNetwork",
    "QtNetworkAuth",
    "QtNfc",
    "QtOpenGL",
    "QtOpenGLWidgets",
    "QtPdf",
    "QtPdfWidgets",
    "QtPositioning",
    "QtPrintSupport",
    "QtQml",
    "QtQmlFeatures",
    "QtQuick",
    "QtQuick3D",
    "QtQuickControls2",
    "QtQuickTest",
    "QtQuickWidgets",
    "QtRemoteObjects",
    "QtScxml",
    "QtSensors",
    "QtSerialBus",
    "QtSerialPort",
    "QtSpatialAudio",
    "QtSql",
    "QtStateMachine",
    "QtTest",
    "QtTextToSpeech",
    "QtUiTools",
    "QtWebChannel",
    "QtWebEngineCore",
    "QtWebEngineQuick",
    "QtWebEngineWidgets",
    "QtWebSockets",
    "QtWebView",
    "QtXml",
)

#: Python modules neither executable needs: other Qt bindings (qasync probes for them), Tk, and
#: the standard library's test suite and developer tools.
EXCLUDED_PYTHON_MODULES: tuple[str, ...] = (
    "PyQt5",
    "PyQt6",
    "PySide2",
    "tkinter",
    "_tkinter",
    "test",
    "idlelib",
    "lib2to3",
    "pydoc_data",
    "ensurepip",
    "venv",
)


def plugins_for(platform: str = sys.platform) -> dict[str, set[str] | None]:
    """The plugin selection for `platform` (a `sys.platform` value)."""
    if platform.startswith("win"):
        extra = WINDOWS_PLUGINS
    elif platform == "darwin":
        extra = MACOS_PLUGINS
    else:
        extra = LINUX_PLUGINS
    merged: dict[str, set[str] | None] = {}
    for table in (COMMON_PLUGINS, extra):
        for kind, names in table.items():
            if kind in merged and (merged[kind] is None or names is None):
                merged[kind] = None
            elif kind in merged:
                merged[kind] = set(merged[kind] or ()) | set(names or ())
            else:
                merged[kind] = None if names is None else set(names)
    return merged


def plugin_name(filename: str) -> str:
    """`libqxcb.so` / `qwindows.dll` / `libqcocoa.dylib` -> `qxcb` / `qwindows` / `qcocoa`."""
    name = filename.rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
    for ext in (".so", ".dll", ".dylib"):
        if name.endswith(ext):
            name = name[: -len(ext)]
            break
    if name.startswith("lib"):
        name = name[3:]
    return name


def keep_plugin(kind: str, filename: str, platform: str = sys.platform) -> bool:
    """Whether the plugin `filename` of type `kind` goes into the bundle."""
    selection = plugins_for(platform)
    if kind not in selection:
        return False
    names = selection[kind]
    return names is None or plugin_name(filename) in names
