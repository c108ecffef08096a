#!/usr/bin/env bash
# Install the system libraries that Qt's platform, theme, input and image plugins link to, when
# any is missing (Debian names: a package is named after the soname, libxcb-cursor.so.0 ->
# libxcb-cursor0). Qt's xcb plugin refuses to load without them, so the window, the screenshot
# test and the app bundle all need them: `make run`, `make test` and `make package` call this.
#
# Usage: packaging/qt_system_libs.sh PYTHON   (a Python that can import PySide6)
set -euo pipefail
PY=${1:?usage: qt_system_libs.sh PYTHON}
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
QT_DIR=$("$PY" -c 'import os, PySide6; print(os.path.join(os.path.dirname(PySide6.__file__), "Qt"))')
plugins=()
for p in platforms/libqxcb.so platforms/libqwayland.so platforms/libqoffscreen.so \
  platformthemes/libqxdgdesktopportal.so wayland-shell-integration/libxdg-shell.so \
  platforminputcontexts/libcomposeplatforminputcontextplugin.so \
  platforminputcontexts/libibusplatforminputcontextplugin.so imageformats/libqsvg.so \
  iconengines/libqsvgicon.so; do
  [ -f "$QT_DIR/plugins/$p" ] && plugins+=("$QT_DIR/plugins/$p")
done
missing=$(ldd "${plugins[@]}" 2>/dev/null | awk '/not found/ {print $1}' | sort -u)
if [ -z "$missing" ]; then
  echo "Qt's system libraries: all present"
  exit 0
fi
packages=()
for lib in $missing; do
  stem=${lib%%.so*}
  major=${lib##*.so.}
  major=${major%%.*}
  case $stem in
    *[0-9]) pkg="$stem-$major" ;;
    *) pkg="$stem$major" ;;
  esac
  packages+=("$(tr '[:upper:]' '[:lower:]' <<<"$pkg")")
done
echo "Qt's system libraries: missing $(echo "$missing" | tr '\n' ' ')-> installing ${packages[*]}"
if ! command -v apt-get >/dev/null; then
  echo "no apt-get here: install those libraries, or Qt's window (xcb) plugin will not load" >&2
  exit 1
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${packages[@]}" >/dev/null
