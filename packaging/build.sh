#!/usr/bin/env bash
# Build Hoist's one-folder bundle with PyInstaller, then smoke-test it (`make package` runs this).
#
#   dist/hoist/hoist          the command line
#   dist/hoist/hoist-gui      the window
#   dist/hoist/_internal/     Python, Qt, resources (the two executables share it)
#   dist/hoist/share/         desktop integration: applications/hoist.desktop,
#                             metainfo/io.github.hoist.Hoist.metainfo.xml, icons/hicolor/*/apps/
#
# Steps: the venv's build dependencies (the project with its gui extra, PyInstaller >= 6), the
# system libraries the bundled Qt plugins link to (Debian names, so they get bundled), PNG icons
# rendered from resources/icons/hoist.svg (build/icons/, never committed), PyInstaller with
# packaging/hoist.spec, the share/ folder, then packaging/smoke_test.sh.
#
# Environment: VENV (default .venv), SKIP_SMOKE=1 to build only.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${VENV:-$ROOT/.venv}
PY=$VENV/bin/python
APP_ID=io.github.hoist.Hoist

started=$(date +%s)
phase_started=""
step() {
  local now
  now=$(date +%s)
  [ -n "$phase_started" ] && printf '   (%ss)\n' $((now - phase_started))
  phase_started=$now
  printf '\n== %s\n' "$*"
}

# -- Python side -------------------------------------------------------------------------------
step "Python environment: $VENV"
[ -x "$PY" ] || python3 -m venv "$VENV"
if ! "$PY" -c 'import PySide6.QtSvg, qasync, httpx, keyring, platformdirs' 2>/dev/null; then
  "$PY" -m pip install --quiet --upgrade pip
  "$PY" -m pip install --quiet -e '.[gui]'
fi
if ! "$PY" -c 'import sys, PyInstaller; sys.exit(int(PyInstaller.__version__.split(".")[0]) < 6)' \
  2>/dev/null; then
  "$PY" -m pip install --quiet 'pyinstaller>=6'
fi
"$PY" -c 'import PyInstaller, PySide6; print(f"PyInstaller {PyInstaller.__version__}, PySide6 {PySide6.__version__}")'

if ! QT_QPA_PLATFORM=offscreen "$PY" -c 'import hoist.gui.app as a; assert callable(a.main)'; then
  echo "build: hoist.gui.app:main is not importable; the bundle needs the window (gui/app.py)" >&2
  exit 1
fi
VERSION=$("$PY" -c 'import hoist.core as c; print(c.__version__)')

# -- system libraries --------------------------------------------------------------------------
# PyInstaller bundles the libraries the kept Qt plugins link to, but only those it can find here;
# a library missing on the build machine would be missing from the bundle. Install them (Debian
# packages are named after the soname: libxcb-icccm.so.4 -> libxcb-icccm4, libdbus-1.so.3 ->
# libdbus-1-3).
step "System libraries the bundled Qt plugins link to"
bash packaging/qt_system_libs.sh "$PY"

# -- icons -------------------------------------------------------------------------------------
step "PNG icons from resources/icons/hoist.svg -> build/icons/"
rm -rf build/icons
"$PY" packaging/render_icons.py build/icons

# -- PyInstaller -------------------------------------------------------------------------------
step "PyInstaller: packaging/hoist.spec -> dist/hoist/"
mkdir -p build
rm -rf dist/hoist
if ! "$PY" -m PyInstaller --noconfirm --clean --log-level WARN \
  --distpath dist --workpath build/pyinstaller packaging/hoist.spec >build/pyinstaller.log 2>&1; then
  tail -n 40 build/pyinstaller.log >&2
  echo "build: PyInstaller failed (full log: build/pyinstaller.log)" >&2
  exit 1
fi
grep -E '^hoist.spec:|WARNING|ERROR' build/pyinstaller.log || true
echo "(log: build/pyinstaller.log; warnings about shell32/ole32 via ctypes are Windows-only code"
echo " paths, and libgtk-3/libgdk-3 belong to Qt's GTK theme plugin, which the spec drops)"

# -- desktop integration -----------------------------------------------------------------------
step "Desktop integration files -> dist/hoist/share/"
SHARE=dist/hoist/share
install -Dm644 resources/hoist.desktop "$SHARE/applications/hoist.desktop"
install -Dm644 "resources/$APP_ID.metainfo.xml" "$SHARE/metainfo/$APP_ID.metainfo.xml"
mkdir -p "$SHARE/icons"
cp -r build/icons/hicolor "$SHARE/icons/"
if command -v desktop-file-validate >/dev/null; then
  desktop-file-validate "$SHARE/applications/hoist.desktop"
fi
if command -v appstreamcli >/dev/null; then
  appstreamcli validate --no-net "$SHARE/metainfo/$APP_ID.metainfo.xml"
fi
find "$SHARE" -type f | sed "s|^dist/hoist/||" | sort

step "Bundle"
du -sh dist/hoist
echo "biggest parts:"
(cd dist/hoist && du -s _internal/* hoist hoist-gui share | sort -rn | head -n 8 |
  awk '{printf "  %6.1f MiB  %s\n", $1 / 1024, $2}')

# -- smoke test --------------------------------------------------------------------------------
if [ "${SKIP_SMOKE:-0}" != 1 ]; then
  step "Smoke test"
  bash packaging/smoke_test.sh dist/hoist
fi

now=$(date +%s)
printf '   (%ss)\n\nbuild: Hoist %s in dist/hoist/ (%s) in %ss\n' $((now - phase_started)) "$VERSION" \
  "$(du -sh dist/hoist | cut -f1)" $((now - started))
