# napari-deblur: build, test and try it on a fresh machine (GNU make).
#
#   make test    create .venv, install the package with its test tools (and, as root on
#                Debian, the system libraries Qt needs), then run pytest; headless
#                machines get a virtual X server (xvfb-run)
#   make run     the demo: napari with a blurred sample when there is a display,
#                otherwise the same job on the command line (--headless)
#   make eval    the benchmark (oracle baselines and bundled models) into benchmarks/
#   make eval-real  the real-data tracks and the do-no-harm gate (DATA=../shared/data) into benchmarks/real/
#   make lint    ruff: lint and format check of the package, the tests and tools/
#   make bench   speed: XYDeblur reference vs optimised path, diffusion steps, into benchmarks/
#   make clean   remove .venv and everything the build and the tests leave behind
#
# Variables (override on the command line):
#   PYTHON       interpreter that creates .venv (>= 3.11)          default: python3
#   TORCH_SPEC   what pip installs for PyTorch, before the package  default: torch==2.13.0
#                It is installed only when .venv cannot import torch yet. For a CUDA
#                build, for example:
#                  make test TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu128"
#                (or `make clean` first to replace a torch that is already there)
#   PYTEST_ARGS  extra pytest arguments, e.g. PYTEST_ARGS='-m "not slow" tests/test_io.py'

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=

VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Debian packages that napari's Qt 6 (PyQt6 wheels) needs to open a window under Xvfb.
# Found with ldd on PyQt6's libqxcb.so, its xcb GL integrations and the Qt libraries napari
# loads; whatever these pull in (libxcb-image0, libxcb-render-util0, libxcb-randr0,
# libxcb-xkb1, libx11-xcb1, Mesa's software GL, a font) is left to apt. Qt 6 no longer
# uses libxcb-xinerama0.
SYSDEPS ?= xvfb xauth \
	libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxcb-shape0 libxkbcommon-x11-0 \
	libgl1 libegl1 libfontconfig1 libdbus-1-3 libglib2.0-0

# Exits with a readable message (not a traceback) on an old interpreter.
PY_VERSION_CHECK := import sys; v = sys.version_info[:2]; sys.exit(0 if v >= (3, 11) else \
	"error: napari-deblur needs Python >= 3.11, but $(PYTHON) is Python %d.%d (make PYTHON=/path/to/python3.11)" % v)

XVFB_RUN := xvfb-run -a -s '-screen 0 1280x1024x24'

.PHONY: all venv install sysdeps test lint run clean

all: test

venv install: $(STAMP)

# Reinstalls only when pyproject.toml changes (or the stamp is missing).
$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { \
		echo "error: '$(PYTHON)' not found; napari-deblur needs Python >= 3.11 (make PYTHON=/path/to/python3.11)" >&2; \
		exit 1; }
	@$(PYTHON) -c '$(PY_VERSION_CHECK)'
	@test -x $(VPY) || { echo "creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	$(VPY) -m pip install --quiet --upgrade pip
	@if $(VPY) -c 'import torch' >/dev/null 2>&1; then \
		echo "torch already in $(VENV): $$($(VPY) -c 'import torch; print(torch.__version__)')"; \
	else \
		echo "$(VPY) -m pip install $(TORCH_SPEC)"; \
		$(VPY) -m pip install --quiet --progress-bar off $(TORCH_SPEC); \
	fi
	$(VPY) -m pip install --quiet --progress-bar off -e '.[testing]'
	@touch $@

# System libraries for the GUI tests. As root with apt-get: installs what is missing.
# Otherwise it only says what is missing and carries on (the GUI tests then skip or fail).
sysdeps:
	@missing=""; \
	for pkg in $(SYSDEPS); do \
		dpkg-query -W -f='$${Status}\n' "$$pkg" 2>/dev/null | grep -q ' installed$$' || missing="$$missing $$pkg"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian packages:$$missing"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -q && apt-get install -y -q --no-install-recommends $$missing; \
	else \
		echo "warning: missing system packages for the GUI tests:$$missing"; \
		echo "         install them with: sudo apt-get install --no-install-recommends$$missing"; \
	fi

# xvfb-run is looked up when the recipe runs, not when make reads this file: on a fresh
# machine `sysdeps` installs it during this very make.
test: $(STAMP) sysdeps
	@if [ -z "$$DISPLAY" ] && command -v xvfb-run >/dev/null 2>&1; then \
		echo "$(XVFB_RUN) $(VPY) -m pytest -q $(PYTEST_ARGS)"; \
		$(XVFB_RUN) $(VPY) -m pytest -q $(PYTEST_ARGS); \
	else \
		if [ -z "$$DISPLAY" ]; then \
			echo "warning: no DISPLAY and no xvfb-run; Qt falls back to the offscreen platform"; \
			export QT_QPA_PLATFORM="$${QT_QPA_PLATFORM:-offscreen}"; \
		fi; \
		echo "$(VPY) -m pytest -q $(PYTEST_ARGS)"; \
		$(VPY) -m pytest -q $(PYTEST_ARGS); \
	fi

# Lint and format check (ruff, pinned in the testing extra; configured in pyproject.toml).
lint: $(STAMP)
	$(VENV)/bin/ruff check napari_deblur tests tools
	$(VENV)/bin/ruff format --check napari_deblur tests tools

run: $(STAMP) sysdeps
	@if [ -n "$$DISPLAY" ]; then \
		echo "$(VPY) -m napari_deblur.demo"; \
		$(VPY) -m napari_deblur.demo; \
	else \
		echo "no DISPLAY: $(VPY) -m napari_deblur.demo --headless"; \
		$(VPY) -m napari_deblur.demo --headless; \
	fi

# The benchmark: oracle Wiener / Richardson-Lucy and the bundled models on held-out images and
# out-of-training kernels; writes benchmarks/benchmark.md, benchmark.json and clock_motion.png.
.PHONY: eval
eval: $(STAMP)
	$(VPY) -m napari_deblur eval --out benchmarks/

# The real-data benchmark and the do-no-harm gate (needs the development data folder, DATA).
DATA ?= ../shared/data
.PHONY: eval-real
eval-real: $(STAMP)
	$(VPY) -m napari_deblur eval --real $(DATA) --out benchmarks/real/

# Speed on this machine (CUDA, then MPS, then CPU): benchmarks/performance-<device>.json and .md.
.PHONY: bench
bench: $(STAMP)
	$(VPY) -m napari_deblur bench

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache .mypy_cache *.egg-info
	find . -path ./.git -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
