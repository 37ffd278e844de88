# The two commands in the README: `make demo` and `make test`. Both set everything up.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: demo test test-latest test-lowest lock lint bench-ingest clean chromium monitoring app

LOCK   := requirements/lock.txt
LOWEST_LOCK := requirements/lowest.txt

# Installs come from the committed lock (every package pinned, with hashes), so a fresh
# machine gets exactly the set that was tested; diffwatch itself goes in without deps.
# torchvision exists on PyPI only as a CUDA build; the CPU-only torch in the local
# find-links folder does not work with it, so find-links is switched off here.
$(STAMP): pyproject.toml $(LOCK)
	test -x $(PY) || python3 -m venv $(VENV)
	PIP_FIND_LINKS= $(PY) -m pip install -q --upgrade pip
	PIP_FIND_LINKS= $(PY) -m pip install -q --require-hashes -r $(LOCK)
	PIP_FIND_LINKS= $(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

# Re-resolve both locks from pyproject.toml (all extras, Python 3.11+, any platform). uv keeps
# the pins already in a lock unless pyproject.toml rules them out (upgrade one package with
# `uv pip compile ... -P NAME`). The second lock takes every direct dependency at the lowest
# version pyproject.toml allows (the others at their newest that fit): `make test-lowest`
# runs the suite on it, so the lower bounds users get from `pip install diffwatch` are tested.
lock:
	uv --version >/dev/null 2>&1 || python3 -m pip install -q uv
	uv pip compile pyproject.toml --extra all --extra dev --universal --python-version 3.11 \
	  --generate-hashes --index-url https://pypi.org/simple -c requirements/constraints.txt \
	  --custom-compile-command 'make lock' -q -o $(LOCK)
	uv pip compile pyproject.toml --extra all --extra dev --universal --python-version 3.11 \
	  --resolution lowest-direct \
	  --generate-hashes --index-url https://pypi.org/simple -c requirements/constraints.txt \
	  --custom-compile-command 'make lock' -q -o $(LOWEST_LOCK)

# The suite on the newest releases of everything, in a venv of its own: upstream breakage
# is found on purpose here, not by accident on a fresh machine.
LATEST := .venv-latest
test-latest: chromium monitoring
	rm -rf $(LATEST) && python3 -m venv $(LATEST)
	PIP_FIND_LINKS= $(LATEST)/bin/python -m pip install -q --upgrade pip
	PIP_FIND_LINKS= $(LATEST)/bin/python -m pip install -q --upgrade -e '.[all,dev]'
	HF_HUB_OFFLINE=1 $(LATEST)/bin/python -m pytest -n 2 $(PYTEST_ARGS)

# The suite on the lowest versions that pyproject.toml allows (requirements/lowest.txt), in a
# venv of its own, rebuilt from scratch whenever that lock changes so nothing newer lingers.
LOWEST := .venv-lowest
LOWEST_STAMP := $(LOWEST)/.installed-stamp
$(LOWEST_STAMP): pyproject.toml $(LOWEST_LOCK)
	rm -rf $(LOWEST) && python3 -m venv $(LOWEST)
	PIP_FIND_LINKS= $(LOWEST)/bin/python -m pip install -q --upgrade pip
	PIP_FIND_LINKS= $(LOWEST)/bin/python -m pip install -q --require-hashes -r $(LOWEST_LOCK)
	PIP_FIND_LINKS= $(LOWEST)/bin/python -m pip install -q --no-deps -e .
	touch $(LOWEST_STAMP)

test-lowest: $(LOWEST_STAMP) chromium monitoring
	HF_HUB_OFFLINE=1 $(LOWEST)/bin/python -m pytest -n 2 $(PYTEST_ARGS)

# The demo ends with the dashboard open on its data (Ctrl-C stops it; DEMO_APP=0 skips it),
# served by the demo itself (--serve) so its image search knows the CLIP that scored.
DEMO_APP ?= 1
demo: $(STAMP)
	$(VENV)/bin/diffwatch demo $(if $(filter 1,$(DEMO_APP)),--serve)

test: $(STAMP) chromium monitoring
	HF_HUB_OFFLINE=1 $(PY) -m pytest -n 2 $(PYTEST_ARGS)

# The browser tests drive Debian's chromium with Playwright (no browser download).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get install -y -q chromium >/dev/null || \
	    { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }; \
	  else sudo apt-get install -y -q chromium; fi; }

# The integration tests scrape and alert through the real servers: Debian's prometheus and
# prometheus-alertmanager (binaries only; the tests start them on loopback ports).
monitoring:
	@{ command -v prometheus && command -v prometheus-alertmanager; } >/dev/null 2>&1 || { \
	  echo "installing Debian's prometheus and prometheus-alertmanager for the tests"; \
	  if [ "$$(id -u)" = 0 ]; then \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q prometheus prometheus-alertmanager \
	      >/dev/null || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive \
	      apt-get install -y -q prometheus prometheus-alertmanager >/dev/null; }; \
	  else sudo apt-get install -y -q prometheus prometheus-alertmanager; fi; }

app: $(STAMP)
	$(VENV)/bin/diffwatch app

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

bench-ingest: $(STAMP)
	$(PY) bench/ingest.py

clean:
	rm -rf $(VENV) $(LATEST) $(LOWEST) .pytest_cache
