# The two commands a newcomer runs (see README): `make run` and `make test`.
# Both install what they need: a venv with the Python packages; Debian's registry, skopeo, Xvfb,
# htpasswd, the desktop-file and AppStream validators, GNOME Keyring and D-Bus (the credential
# tests' real Secret Service) when they are missing; and the system
# libraries Qt's window plugin links to (packaging/qt_system_libs.sh). With sudo when not root.

PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test test-fast lint typecheck pytest system-deps qt-libs bench package clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[gui,test]'
	touch $(STAMP)

# command -> the Debian package that brings it
TOOLS := docker-registry:docker-registry skopeo:skopeo Xvfb:xvfb htpasswd:apache2-utils \
	desktop-file-validate:desktop-file-utils appstreamcli:appstream \
	gnome-keyring-daemon:gnome-keyring secret-tool:libsecret-tools dbus-daemon:dbus-daemon

system-deps:
	@missing=""; \
	for pair in $(TOOLS); do \
	  command -v $${pair%%:*} >/dev/null || missing="$$missing $${pair#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

## The libraries Qt's platform plugins link to (libxcb-cursor0 and friends): the window needs them.
qt-libs: $(STAMP)
	@bash packaging/qt_system_libs.sh $(BIN)/python

## Launch the app (with a local demo registry when none is configured).
run: $(STAMP) system-deps qt-libs
	@if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ] || [ "$$(uname)" = Darwin ]; then \
	  $(BIN)/hoist-gui; \
	else \
	  echo "No display here, so no window. On a desktop, 'make run' opens it; on this machine,"; \
	  echo "'xvfb-run -a $(BIN)/hoist-gui' runs it on a virtual screen, and the command line"; \
	  echo "works as it is:"; echo; \
	  $(BIN)/hoist --help; \
	fi

## Run the whole test suite: lint, types, then every test against real registries.
test: $(STAMP) system-deps qt-libs lint typecheck pytest

## The quick subset (no test marked slow), for the edit-test loop.
test-fast: $(STAMP) system-deps qt-libs lint typecheck
	QT_QPA_PLATFORM=offscreen $(BIN)/pytest -q -m 'not slow'

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy follows no package-dir mapping: it reads the packages through build/import-root/hoist/*,
# links named as installed (packaging/import_root.py).
typecheck: $(STAMP)
	@$(BIN)/python packaging/import_root.py >/dev/null
	$(BIN)/mypy --strict

pytest: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/pytest -q

bench: $(STAMP) system-deps
	$(BIN)/python bench/push_throughput.py

package: $(STAMP) system-deps
	bash packaging/build.sh

clean:
	rm -rf $(VENV) build dist *.egg-info
