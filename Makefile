# The two commands a newcomer runs (see README): `make run` and `make test`.
# Both install what they need: a venv with the Python packages, and Debian's registry, skopeo,
# Xvfb and htpasswd when they are missing (with sudo when not root).

PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
APT_PKGS := docker-registry skopeo xvfb apache2-utils
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test lint typecheck pytest system-deps bench package clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[gui,test]'
	touch $(STAMP)

system-deps:
	@missing=""; \
	command -v docker-registry >/dev/null || missing="$$missing docker-registry"; \
	command -v skopeo >/dev/null || missing="$$missing skopeo"; \
	command -v Xvfb >/dev/null || missing="$$missing xvfb"; \
	command -v htpasswd >/dev/null || missing="$$missing apache2-utils"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

## Launch the app (with a local demo registry when none is configured).
run: $(STAMP) system-deps
	@if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ] || [ "$$(uname)" = Darwin ]; then \
	  $(BIN)/hoist-gui; \
	else \
	  echo "No display here, so no window. On a desktop, 'make run' opens it; on this machine,"; \
	  echo "'xvfb-run -a $(BIN)/hoist-gui' runs it on a virtual screen, and the command line"; \
	  echo "works as it is:"; echo; \
	  $(BIN)/hoist --help; \
	fi

## Run the whole test suite: lint, types, then every test against real registries.
test: $(STAMP) system-deps lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check core

typecheck: $(STAMP)
	$(BIN)/mypy --strict core

pytest: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/pytest -q

bench: $(STAMP) system-deps
	$(BIN)/python bench/push_throughput.py

package: $(STAMP) system-deps
	bash packaging/build.sh

clean:
	rm -rf $(VENV) build dist *.egg-info
