# napari-deblur: set-up, tests and demo on a fresh machine.
#   make run    install into .venv, open napari with a blurred sample (headless: the CLI job)
#   make test   install into .venv (+ Debian packages for the GUI tests) and run the suite
# PyTorch is installed first, from TORCH_SPEC, unless .venv already has one; e.g. for CUDA:
#   make test TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu128"

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=
PY := $(VENV)/bin/python
SYSDEPS := xvfb xauth libgl1 libegl1 libfontconfig1 libdbus-1-3 libxkbcommon-x11-0 \
	libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0 libxcb-cursor0 libxcb-image0 \
	libxcb-render-util0 libxcb-shape0 libxcb-randr0 libxcb-xkb1
XVFB := $(if $(DISPLAY),,$(shell command -v xvfb-run >/dev/null 2>&1 && echo "xvfb-run -a -s '-screen 0 1280x1024x24'"))

.PHONY: install sysdeps test run clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "napari-deblur needs Python >= 3.11, $(PYTHON) is " + sys.version.split()[0])'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c 'import torch' 2>/dev/null || $(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e '.[testing]'
	touch $@

sysdeps:
	@missing=""; for p in $(SYSDEPS); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else \
		echo "warning: GUI tests need these Debian packages:$$missing (not root, not installing)"; \
	fi

test: install sysdeps
	$(XVFB) $(PY) -m pytest -q $(PYTEST_ARGS)

run: install sysdeps
	@if [ -n "$(DISPLAY)" ]; then $(PY) -m napari_deblur.demo; \
	else $(PY) -m napari_deblur.demo --headless; fi

clean:
	rm -rf $(VENV) build dist .pytest_cache *.egg-info
