# Two entry points for a fresh machine: `make reproduce` and `make test`.
# Both create .venv once (re-created only when pyproject.toml changes) and reuse it.
PYTHON ?= python3
VENV   ?= .venv
# CPU build by default. A GPU user installs the CUDA build of torch into $(VENV) first
# (or passes TORCH="torch==2.13.0 --index-url <CUDA wheel index>"); see README.md.
TORCH  ?= torch==2.13.0
SPANDREL ?= spandrel>=0.4,<0.5
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.tlc-probe-installed

.PHONY: env browser reproduce test test-fast lint lab bench docs docs-results clean

env: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "tlc-probe needs Python >= 3.11, found " + sys.version.split()[0]'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c 'import torch' 2>/dev/null || $(BIN)/python -m pip install --quiet $(TORCH)
	# spandrel without its torchvision requirement: PyPI's torchvision needs the CUDA torch
	# (tlc_probe.models.foreign explains); its other requirements come with the test extra.
	$(BIN)/python -m pip show --quiet spandrel 2>/dev/null || $(BIN)/python -m pip install --quiet --no-deps '$(SPANDREL)'
	$(BIN)/python -m pip install --quiet -e '.[test,lab]'
	touch $(STAMP)

reproduce: $(STAMP)
	$(BIN)/tlc-probe reproduce --out results --overwrite

# The browser test (tests/test_lab_browser.py) needs a Chromium: found, or installed by
# scripts/ensure_browser.sh (Playwright's download, else Debian's package as root), or a
# one-line message saying what to run.
browser: $(STAMP)
	@bash scripts/ensure_browser.sh $(BIN)/python

test: $(STAMP) browser
	$(BIN)/python -m pytest

# The edit-test loop (< 1 min): everything but training, the main job, the wheel and notebooks.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" tests

lint: $(STAMP)
	$(BIN)/ruff check .

# JupyterLab of .venv (its kernel has the package) on notebooks/; notebook 02 opens with the
# explorer. As root (containers, CI machines) Jupyter insists on --allow-root.
LAB_ARGS ?= $(if $(filter 0,$(shell id -u)),--allow-root)
lab: $(STAMP)
	$(BIN)/jupyter lab --ServerApp.root_dir=notebooks $(LAB_ARGS)

bench: $(STAMP)
	$(BIN)/python benchmarks/local_pool.py

# The documentation site (MkDocs: guides, API reference, notebooks) in site/.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# docs/results.md and its figures from a real run of the main job.
docs-results: reproduce
	$(BIN)/python scripts/update_docs.py results

clean:
	rm -rf $(VENV) results .pytest_cache
