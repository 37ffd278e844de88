# The two commands in the README: `make demo` and `make test`. Both set everything up.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: demo test lint bench-ingest clean chromium app

# torchvision exists on PyPI only as a CUDA build; the CPU-only torch in the local
# find-links folder does not work with it, so find-links is switched off here.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	PIP_FIND_LINKS= $(PY) -m pip install -q --upgrade pip
	PIP_FIND_LINKS= $(PY) -m pip install -q -e '.[all,dev]'
	touch $(STAMP)

# The demo ends with the dashboard open on its data (Ctrl-C stops it; DEMO_APP=0 skips it).
DEMO_APP ?= 1
demo: $(STAMP)
	$(VENV)/bin/diffwatch demo
	@if [ "$(DEMO_APP)" = 1 ]; then $(VENV)/bin/diffwatch app; fi

test: $(STAMP) chromium
	HF_HUB_OFFLINE=1 $(PY) -m pytest -n 2 $(PYTEST_ARGS)

# The browser tests drive Debian's chromium with Playwright (no browser download).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get install -y -q chromium >/dev/null || \
	    { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }; \
	  else sudo apt-get install -y -q chromium; fi; }

app: $(STAMP)
	$(VENV)/bin/diffwatch app

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

bench-ingest: $(STAMP)
	$(PY) bench/ingest.py

clean:
	rm -rf $(VENV) .pytest_cache
