# Two-command quick start:  `make run` (viewer on the demo volume)  and  `make test`.
# Each target creates .venv and installs what it needs on first use.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
TSTAMP := $(VENV)/.installed-test
PSTAMP := $(VENV)/.installed-package

.PHONY: run test lint format bench screenshot package install-desktop clean

$(VENV)/bin/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "imagery-gui needs Python >= 3.11; run make PYTHON=python3.11 ...")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e .
	@touch $@

$(TSTAMP): pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $@ $(STAMP)

$(PSTAMP): pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e '.[package]'
	@touch $@ $(STAMP)

## Open the viewer on the built-in demo volume (generated on first use, ~10 s).
## If Qt's system libraries are missing, imagery-gui exits 2 and this prints the apt line.
run: $(STAMP)
	@$(VENV)/bin/imagery-gui || { rc=$$?; \
	  line=$$($(PY) -c 'from imagery_gui.syslibs import apt_line, missing_libraries as m; print(apt_line() if m() else "")'); \
	  if [ -n "$$line" ]; then \
	    echo "make run: optional step, then run make run again (Debian/Ubuntu; installs what Qt's window needs):"; \
	    echo "    $$line"; \
	  fi; exit $$rc; }

## Run the whole test suite headless.
test: $(TSTAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest

## Style, formatting, layering and types (import-linter contracts and mypy settings are in
## pyproject.toml: [tool.importlinter], [tool.mypy]).
lint: $(TSTAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-logo
	$(VENV)/bin/mypy

format: $(TSTAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

## Speed figures against ImageryClient and plain cloud-volume (see benchmarks/README.md).
bench: $(TSTAMP)
	QT_QPA_PLATFORM=offscreen $(PY) benchmarks/run_all.py

## Screenshot of the window on the demo volume, as shown in the README.
screenshot: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(VENV)/bin/imagery-gui --screenshot docs/screenshot.png \
	    --root-ids 864691135898292963 864691135197106784 864691135343341928 864691135871001686 864691135463058046

## Standalone one-folder app in dist/imagery-gui/ (PyInstaller; see packaging/).
package: $(PSTAMP)
	$(VENV)/bin/pyinstaller --noconfirm --clean --log-level WARN \
	    --distpath dist --workpath build/pyinstaller packaging/imagery-gui.spec
	@echo "bundle: dist/imagery-gui/imagery-gui ($$(du -sh dist/imagery-gui | cut -f1))"

## Menu entry and icon for the current user (the bundle if built, else the venv's command).
BIN := $(if $(wildcard dist/imagery-gui/imagery-gui),$(abspath dist/imagery-gui/imagery-gui),$(abspath $(VENV)/bin/imagery-gui))
install-desktop:
	install -Dm644 resources/imagery-gui.svg $(HOME)/.local/share/icons/hicolor/scalable/apps/imagery-gui.svg
	install -Dm644 resources/imagery-gui.png $(HOME)/.local/share/icons/hicolor/512x512/apps/imagery-gui.png
	mkdir -p $(HOME)/.local/share/applications
	sed -e 's|^Exec=.*|Exec=$(BIN)|' -e 's|^TryExec=.*|TryExec=$(BIN)|' resources/imagery-gui.desktop \
	    > $(HOME)/.local/share/applications/imagery-gui.desktop

clean:
	rm -rf $(VENV) build dist *.egg-info
