"""Fast checks of the packaging files (the PyInstaller build itself runs in packaging/build.sh).

The spec and scripts parse; the Qt selection keeps what each platform needs and nothing the GUI
imports is excluded; the .desktop file and the AppStream metainfo are valid (with the freedesktop
validators when installed, else by parsing them) and agree with core.__version__ and the
project's scripts; resources load through importlib.resources, and the icon renders to PNGs.
"""

from __future__ import annotations

import ast
import configparser
import importlib.util
import os
import shutil
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from importlib import resources
from pathlib import Path
from types import ModuleType

import pytest

import hoist.core as core

ROOT = Path(__file__).resolve().parent.parent
PACKAGING = ROOT / "packaging"
APP_ID = "io.github.hoist.Hoist"
DESKTOP = ROOT / "resources" / "hoist.desktop"
METAINFO = ROOT / "resources" / f"{APP_ID}.metainfo.xml"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"packaging_{name}", PACKAGING / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def qt_selection() -> ModuleType:
    return load("qt_selection")


def pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


# -- the spec and the scripts ------------------------------------------------------------------


def test_spec_compiles_and_builds_both_executables() -> None:
    source = (PACKAGING / "hoist.spec").read_text()
    tree = compile(source, "hoist.spec", "exec", ast.PyCF_ONLY_AST)
    calls = {
        node.func.id: node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }
    assert {"Analysis", "EXE", "COLLECT", "BUNDLE"} <= calls.keys()
    names = {
        kw.value.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "EXE"
        for kw in node.keywords
        if kw.arg == "name" and isinstance(kw.value, ast.Constant)
    }
    assert names == {"hoist", "hoist-gui"}
    assert "rthook_child_env.py" in source  # children must not inherit the bundle's library path
    compile(source, "hoist.spec", "exec")


@pytest.mark.parametrize(
    "script", ["launch_cli.py", "launch_gui.py", "render_icons.py", "rthook_child_env.py"]
)
def test_scripts_compile(script: str) -> None:
    compile((PACKAGING / script).read_text(), script, "exec")


def test_launchers_call_the_project_entry_points() -> None:
    scripts = pyproject()["project"]
    assert isinstance(scripts, dict)
    assert scripts["scripts"]["hoist"] == "hoist.gui.entry:main"
    assert scripts["gui-scripts"]["hoist-gui"] == "hoist.gui.app:main"
    # The bundle's hoist is the Qt-free command line; its hoist-gui is the window.
    assert "from hoist.core.cli import main" in (PACKAGING / "launch_cli.py").read_text()
    assert "from hoist.gui.app import main" in (PACKAGING / "launch_gui.py").read_text()


@pytest.mark.parametrize("script", ["build.sh", "smoke_test.sh"])
def test_shell_scripts_parse(script: str) -> None:
    subprocess.run(["bash", "-n", str(PACKAGING / script)], check=True)


# -- which parts of Qt go in -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("platform", "kind", "filename", "kept"),
    [
        ("linux", "platforms", "libqxcb.so", True),
        ("linux", "platforms", "libqwayland.so", True),
        ("linux", "platforms", "libqoffscreen.so", True),
        ("linux", "platforms", "libqeglfs.so", False),
        ("linux", "platforms", "libqvnc.so", False),
        ("linux", "imageformats", "libqsvg.so", True),
        ("linux", "imageformats", "libqjpeg.so", False),
        ("linux", "iconengines", "libqsvgicon.so", True),
        ("linux", "platformthemes", "libqxdgdesktopportal.so", True),
        ("linux", "platformthemes", "libqgtk3.so", False),
        ("linux", "wayland-shell-integration", "libxdg-shell.so", True),
        ("linux", "tls", "libqopensslbackend.so", False),
        ("linux", "qmltooling", "libqmldbg_server.so", False),
        ("win32", "platforms", "qwindows.dll", True),
        ("win32", "platforms", "libqxcb.so", False),
        ("win32", "styles", "qmodernwindowsstyle.dll", True),
        ("win32", "imageformats", "qsvg.dll", True),
        ("darwin", "platforms", "libqcocoa.dylib", True),
        ("darwin", "styles", "libqmacstyle.dylib", True),
        ("darwin", "iconengines", "libqsvgicon.dylib", True),
    ],
)
def test_qt_plugin_selection(
    qt_selection: ModuleType, platform: str, kind: str, filename: str, kept: bool
) -> None:
    assert qt_selection.keep_plugin(kind, filename, platform) is kept


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_gui_imports_no_qt_module_the_bundle_excludes(qt_selection: ModuleType) -> None:
    excluded = {f"PySide6.{name}" for name in qt_selection.EXCLUDED_QT_MODULES}
    offenders = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in sorted((ROOT / "gui").rglob("*.py"))
        for name in _imports(path)
        if name in excluded or any(name.startswith(f"{ex}.") for ex in excluded)
    }
    assert not offenders, (
        "gui/ imports Qt modules that packaging/qt_selection.py keeps out of the bundle "
        f"(the built app would fail): {sorted(offenders)}"
    )


def test_core_stays_free_of_qt() -> None:
    # The CLI executable is analysed with PySide6 excluded: the engine must not need it.
    offenders = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in sorted((ROOT / "core").rglob("*.py"))
        for name in _imports(path)
        if name.split(".")[0] in {"PySide6", "shiboken6", "qasync", "gui"}
    }
    assert not offenders


# -- desktop entry -----------------------------------------------------------------------------


def test_desktop_file_keys() -> None:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # keys are case-sensitive
    parser.read_string(DESKTOP.read_text())
    entry = parser["Desktop Entry"]
    assert entry["Type"] == "Application"
    assert entry["Name"] == "Hoist"
    assert entry["Exec"] == "hoist-gui %F"
    assert entry["Icon"] == "hoist"
    assert entry["Terminal"] == "false"
    categories = entry["Categories"].split(";")
    assert categories[-1] == ""  # lists end with ';'
    assert {"Development", "Network"} <= set(categories)
    assert entry["MimeType"].endswith(";")
    assert "Comment" in entry


@pytest.mark.skipif(not shutil.which("desktop-file-validate"), reason="desktop-file-utils")
def test_desktop_file_validates() -> None:
    result = subprocess.run(
        ["desktop-file-validate", str(DESKTOP)], capture_output=True, text=True, check=False
    )
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert result.returncode == 0 and not errors, result.stdout + result.stderr


# -- AppStream metainfo ------------------------------------------------------------------------


def test_metainfo_content() -> None:
    component = ET.parse(METAINFO).getroot()
    assert component.tag == "component"
    assert component.get("type") == "desktop-application"
    assert component.findtext("id") == APP_ID
    for required in ("name", "summary", "metadata_license", "project_license", "description"):
        assert component.find(required) is not None, required
    assert component.findtext("metadata_license") == "CC0-1.0"
    project = pyproject()["project"]
    assert isinstance(project, dict)
    spdx = project["license"]  # "Apache-2.0", or the older {text = "Apache-2.0"} form
    assert component.findtext("project_license") == (
        spdx if isinstance(spdx, str) else spdx["text"]
    )
    # The desktop file keeps its name (hoist.desktop) and gui/app.py sets the same name.
    assert component.findtext("launchable[@type='desktop-id']") == DESKTOP.name
    binaries = {b.text for b in component.iterfind("provides/binary")}
    assert binaries == set(project["scripts"]) | set(project["gui-scripts"])
    releases = component.findall("releases/release")
    assert releases, "metainfo has no <release>"
    assert releases[0].get("version") == core.__version__, (
        f"the newest <release> in {METAINFO.name} must be core.__version__ ({core.__version__})"
    )
    assert releases[0].get("date")


@pytest.mark.skipif(not shutil.which("appstreamcli"), reason="appstream")
def test_metainfo_validates() -> None:
    result = subprocess.run(
        ["appstreamcli", "validate", "--no-net", str(METAINFO)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# -- resources ---------------------------------------------------------------------------------


def test_resources_load_through_importlib() -> None:
    root = resources.files("hoist.resources")
    for name in ("hoist.desktop", f"{APP_ID}.metainfo.xml"):
        assert root.joinpath(name).read_bytes()
    svg = root.joinpath("icons", "hoist.svg").read_bytes()
    assert b"<svg" in svg
    ET.fromstring(svg)


def test_package_data_ships_the_resources() -> None:
    tool = pyproject()["tool"]
    assert isinstance(tool, dict)
    patterns = tool["setuptools"]["package-data"]["hoist.resources"]
    resource_dir = ROOT / "resources"
    shipped = {p for pattern in patterns for p in resource_dir.glob(pattern)}
    wanted = {
        p
        for p in resource_dir.rglob("*")
        if p.is_file() and p.suffix in {".svg", ".desktop", ".xml", ".qss"}
    }
    assert wanted <= shipped, f"not in package-data: {sorted(map(str, wanted - shipped))}"


def test_render_icons(qapp: object, tmp_path: Path) -> None:
    from PySide6.QtGui import QImage

    render_icons = load("render_icons")
    written = render_icons.render(ROOT / "resources" / "icons" / "hoist.svg", tmp_path, (16, 256))
    assert [p.relative_to(tmp_path).as_posix() for p in written] == [
        "hicolor/16x16/apps/hoist.png",
        "hicolor/256x256/apps/hoist.png",
    ]
    image = QImage(str(written[-1]))
    assert (image.width(), image.height()) == (256, 256)
    assert image.pixelColor(128, 128).alpha() > 0  # something was drawn in the middle
    assert (tmp_path / "hoist.png").is_file()
    assert (tmp_path / "hicolor" / "scalable" / "apps" / "hoist.svg").is_file()


# -- the contract with gui/app.py that packaging/smoke_test.sh relies on -------------------------


def _run_gui(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    if not (ROOT / "gui" / "app.py").exists():
        pytest.skip("gui/app.py is not written yet")
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_RUNTIME_DIR": str(home),
        "DOCKER_CONFIG": str(home / ".docker"),
        "HOIST_STATE_DIR": str(tmp_path / "state"),
        "HOIST_CONFIG_DIR": str(tmp_path / "config"),
        "HOIST_DATA_DIR": str(tmp_path / "data"),
        "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
        "QT_QPA_PLATFORM": "offscreen",
    }
    code = "import sys; from hoist.gui.app import main; sys.argv[0] = 'hoist-gui'; sys.exit(main())"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_gui_app_names_the_desktop_file() -> None:
    # Wayland compositors find the window's .desktop file (and icon) by this name, and GNOME on
    # X11 by WM_CLASS, whose class part is the application name (StartupWMClass).
    app = ROOT / "gui" / "app.py"
    if not app.exists():
        pytest.skip("gui/app.py is not written yet")
    source = app.read_text()
    assert f'setDesktopFileName("{DESKTOP.stem}")' in source
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # keys are case-sensitive
    parser.read_string(DESKTOP.read_text())
    wm_class = parser["Desktop Entry"]["StartupWMClass"]
    assert f'setApplicationName("{wm_class}")' in source


def test_gui_app_prints_its_version(tmp_path: Path) -> None:
    result = _run_gui(["--version"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == f"hoist {core.__version__}"


def test_gui_app_smoke_test_shows_the_window(tmp_path: Path) -> None:
    result = _run_gui(["--smoke-test"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "window shown" in result.stdout.splitlines()
