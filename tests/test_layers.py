"""The code's shape: one import name, layers whose imports only point down, no cycles.

Every module of `hoist.core` and `hoist.gui` is read with `ast` (nothing is imported), its
imports are resolved to module names, and each is checked against the layer table below. A
new module lands in a layer by its folder; a new folder must be added here on purpose.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {"hoist.core": ROOT / "core", "hoist.gui": ROOT / "gui"}

#: Layers, lowest first. A module may import from its own layer or any lower one.
#: The foundation (errors, units, paths, retry, progress, bandwidth) sits at the root of core.
LAYERS: list[tuple[str, list[str]]] = [
    ("foundation", ["hoist.core"]),  # the root modules of core (not its subpackages)
    ("oci", ["hoist.core.oci"]),
    ("sources", ["hoist.core.sources"]),
    ("registry", ["hoist.core.registry"]),
    ("transfer", ["hoist.core.transfer"]),
    ("command line", ["hoist.core.cli", "hoist.core.__main__"]),  # cli/ and python -m hoist.core
    ("window: shared widgets", ["hoist.gui.widgets"]),
    ("window: settings", ["hoist.gui.settings"]),
    ("window: features", ["hoist.gui.add", "hoist.gui.browse", "hoist.gui.transfers"]),
    ("window: shell", ["hoist.gui"]),  # app, main_window, entry
]


def module_name(path: Path) -> str:
    for package, folder in FOLDERS.items():
        if path.is_relative_to(folder):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            return ".".join([package, *parts])
    raise AssertionError(path)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for folder in FOLDERS.values() for p in sorted(folder.rglob("*.py"))}


def layer_of(module: str) -> int:
    """The highest-numbered layer whose prefix owns the module (the most specific match)."""
    best: tuple[int, int] | None = None  # (prefix length, layer index)
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            root_only = prefix in ("hoist.core", "hoist.gui")
            if module == prefix or module.startswith(prefix + "."):
                if root_only and module.count(".") > prefix.count(".") + 1:
                    continue  # a subpackage's module: its own entry decides
                if best is None or len(prefix) > best[0]:
                    best = (len(prefix), index)
    assert best is not None, f"{module} is in no layer: add its folder to LAYERS"
    return best[1]


def _type_checking_block(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.If)
        and isinstance(node.test, ast.Name | ast.Attribute)
        and "TYPE_CHECKING" in ast.unparse(node.test)
    )


def imports_of(path: Path, modules: dict[str, Path]) -> list[tuple[int, str]]:
    """(line, module) for every import, at any depth, except under `if TYPE_CHECKING:`."""
    tree = ast.parse(path.read_text(), str(path))
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        if _type_checking_block(node):
            return
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: use the absolute hoist.* name"
            base = node.module or ""
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append((node.lineno, sub if sub in modules else base))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph() -> dict[str, list[tuple[int, str]]]:
    modules = all_modules()
    return {name: imports_of(path, modules) for name, path in modules.items()}


def test_every_module_is_in_a_layer() -> None:
    for name in all_modules():
        layer_of(name)


def test_imports_point_down_the_layers() -> None:
    upward = []
    for module, imports in import_graph().items():
        own = layer_of(module)
        for line, target in imports:
            if not target.startswith("hoist."):
                continue
            if layer_of(target) > own:
                upward.append(
                    f"{module}:{line} ({LAYERS[own][0]}) imports {target} "
                    f"({LAYERS[layer_of(target)][0]})"
                )
    assert not upward, "imports pointing up a layer:\n" + "\n".join(upward)


def test_no_import_cycle() -> None:
    graph = {
        module: sorted({t for _, t in imports if t.startswith("hoist.") and t != module})
        for module, imports in import_graph().items()
    }
    # Tarjan's strongly connected components: any component of two or more is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, []):
            if w not in graph:
                continue  # a package's __init__ that isn't a module file here
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            connect(v)
    assert not cycles, f"import cycles: {cycles}"


def test_core_never_imports_qt_or_the_window() -> None:
    for module, imports in import_graph().items():
        if not module.startswith("hoist.core"):
            continue
        for line, target in imports:
            top = target.split(".")[0]
            qt = {"PySide6", "shiboken6", "qasync"}
            assert top not in qt, f"{module}:{line} imports {target}"
            assert not target.startswith("hoist.gui"), f"{module}:{line} imports {target}"


def test_nothing_imports_the_old_top_level_names() -> None:
    """`core`, `gui` and `resources` are folders, not import names: only `hoist.*` is installed."""
    sources = [*ROOT.glob("core/**/*.py"), *ROOT.glob("gui/**/*.py"), *ROOT.glob("tests/**/*.py")]
    sources += [*ROOT.glob("packaging/*.py"), *ROOT.glob("bench/*.py")]
    bad = []
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            bad += [
                f"{path.relative_to(ROOT)}:{node.lineno}: {n}"
                for n in names
                if n.split(".")[0] in {"core", "gui", "resources"}
            ]
    assert not bad, "\n".join(bad)


def test_pyproject_lists_every_package_folder() -> None:
    """setuptools installs only the packages pyproject names: a new folder must be listed."""
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(tool["packages"])
    on_disk = set()
    for package, folder in FOLDERS.items():
        for init in folder.rglob("__init__.py"):
            rel = init.parent.relative_to(folder).parts
            on_disk.add(".".join([package, *rel]))
    on_disk.add("hoist.resources")
    assert listed == on_disk


def test_the_command_line_works_beside_a_decoy_core_package(tmp_path: Path) -> None:
    """Another distribution's `core`, `gui` or `resources` package can't break Hoist."""
    for name in ("core", "gui", "resources"):
        decoy = tmp_path / name
        decoy.mkdir()
        (decoy / "__init__.py").write_text(f"raise ImportError('decoy {name} package imported')\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    script = Path(sys.executable).parent / "hoist"
    for cmd in ([str(script), "--version"], [sys.executable, "-m", "hoist.core", "--version"]):
        result = subprocess.run(
            cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("hoist "), result.stdout
        assert "decoy" not in result.stderr


@pytest.mark.parametrize("module", ["hoist.core.cli", "hoist.gui.app", "hoist.resources"])
def test_the_installed_names_import(module: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
        cwd="/",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def readme_layout() -> str:
    """The README's "How the code is laid out" section, up to the next heading."""
    text = (ROOT / "README.md").read_text()
    start = text.index("## How the code is laid out")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def test_the_readme_layout_names_every_module() -> None:
    """The README's map is drawn from the code: every module of core and gui is named there
    (by its file name, in its folder's entry), so a module added without a word is caught."""
    layout = readme_layout()
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", layout))
    unnamed = sorted(
        name
        for name, path in all_modules().items()
        if path.stem not in ("__init__", "__main__") and path.stem not in words
    )
    assert unnamed == [], f"README's layout names none of these modules: {unnamed}"
