# Every target installs what it needs first (into .venv), so each works on a fresh clone.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
LAB_ARGS ?=  # extra options for `make lab`, e.g. --no-browser --port 8888
# The student's workspace (git-ignored): `make lab` copies each lab there once, opens
# JupyterLab on it, and never overwrites a file the student has changed.
WORK ?= labs/my-work
# Jupyter refuses to start as root (containers often run as root) unless told to.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u 2>/dev/null)),--allow-root)

BOOK_MD := $(wildcard book/*.md)
SOLUTION_MD := $(wildcard solutions/*.md)
LAB_MD := $(wildcard labs/*.md)
CHAPTERS := $(filter book/0%.md,$(BOOK_MD))
# the .ipynb files `make notebooks` writes; `make clean` removes these paths only
NOTEBOOK_IPYNB := $(patsubst %.md,%.ipynb,\
  $(filter-out book/intro.md,$(BOOK_MD)) $(SOLUTION_MD) $(LAB_MD))
# Notebooks run one at a time here; one BLAS thread each keeps them fast even when
# the machine is busy (two threads fighting over two cores can be 50x slower).
RUN_ENV := NN_CHECK_STRICT=1 OPENBLAS_NUM_THREADS=1
NBVAL_CHAPTERS = $(CHAPTERS:.md=.ipynb)  # `make test` leaves them to `make book`

.PHONY: help install labs notebooks lab lab-prepare lint pytest nbval stubs book browser-test test bench grade clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 12

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --editable .
	touch $@

install: $(STAMP)  ## create .venv and install everything (done by every target)

labs: $(STAMP)  ## regenerate labs/ from solutions/ (refuses to touch a file it did not write)
	$(PY) -m utils.labgen solutions labs

notebooks: $(STAMP)  ## write the paired .ipynb next to every .md notebook (git-ignored)
	$(BIN)/jupytext --quiet --to ipynb $(BOOK_MD:book/intro.md=) $(SOLUTION_MD) $(LAB_MD)

lab-prepare: $(STAMP)  ## copy new labs into your workspace, newer versions beside yours
	$(PY) -m utils.workspace --labs labs --work $(WORK)

# JupyterLab's settings overrides: jupytext opens .md as notebooks, and no prompt asks
# the student about "official Jupyter news" (the notification extension's fetchNews,
# a string setting: "true", "false" or "none" for ask).
OVERRIDES := $(VENV)/share/jupyter/lab/settings/overrides.json
NO_NEWS := import json, pathlib, sys; p = pathlib.Path(sys.argv[1]); \
  s = json.loads(p.read_text() or "{}") if p.exists() else {}; \
  s.setdefault("@jupyterlab/apputils-extension:notification", {})["fetchNews"] = "false"; \
  p.parent.mkdir(parents=True, exist_ok=True); p.write_text(json.dumps(s, indent=2) + "\n")

lab: lab-prepare  ## open JupyterLab on your workspace (.md files open as notebooks)
	$(BIN)/jupytext-config --settings-file $(OVERRIDES) set-default-viewer
	$(PY) -c '$(NO_NEWS)' $(OVERRIDES)
	$(if $(ALLOW_ROOT),@echo "Running as root: starting Jupyter with --allow-root.")
	$(BIN)/jupyter lab --ServerApp.root_dir=$(WORK) $(ALLOW_ROOT) $(LAB_ARGS)

lint: $(STAMP)  ## ruff
	$(BIN)/ruff check utils tests book/_ext
	$(BIN)/ruff format --check utils tests book/_ext

pytest: $(STAMP)  ## unit tests, checks and their catalogues, lab generator, stub test
	OPENBLAS_NUM_THREADS=1 $(BIN)/pytest -q

nbval: $(STAMP) notebooks  ## execute chapters and solutions (checks must pass: strict mode)
	$(RUN_ENV) $(BIN)/pytest -q -p no:cacheprovider \
	  --nbval-lax --nbval-current-env --rootdir=. -o testpaths= \
	  $(NBVAL_CHAPTERS) $(SOLUTION_MD:.md=.ipynb)

stubs: $(STAMP)  ## the untouched labs: every check says "not implemented yet"
	OPENBLAS_NUM_THREADS=1 $(BIN)/pytest -q -m notebooks tests/test_notebooks.py

# cp -p keeps the labs' times, so Sphinx re-reads only a lab that changed
book: $(STAMP)  ## build the site into book/_build/html (executes chapters; warnings fail)
	rm -rf book/labs && mkdir -p book/labs && cp -p labs/*.md book/labs/
	$(RUN_ENV) TQDM_DISABLE=1 $(BIN)/jupyter-book build book --warningiserror --keep-going
	@# the accuracies the chapters printed clear their targets by half a point
	$(BIN)/pytest -q -p no:cacheprovider tests/test_margins.py
	@echo "Site: book/_build/html/index.html"

browser-test: $(STAMP)  ## load every page of the built site in headless Chromium; screenshots
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing Debian's chromium and chromium-driver for the browser test"; \
	    apt-get update -qq && apt-get install -y -qq chromium chromium-driver; \
	  else \
	    echo "The browser test needs Debian's chromium and chromium-driver:" \
	      "sudo apt-get install -y chromium chromium-driver"; exit 1; \
	  fi; \
	fi
	NN_BROWSER_TEST=1 $(BIN)/pytest -q -p no:cacheprovider tests/test_browser.py
	@echo "Screenshots: book/_build/screenshots/{desktop,phone}/"

# In `make test` the site build executes the chapters (strict mode, a cell error
# fails it), so nbval runs only the solutions there: each chapter runs once.
test: NBVAL_CHAPTERS :=
test: sandbox lint pytest nbval book browser-test  ## everything CI runs

bench: $(STAMP)  ## timings the text quotes (not part of test)
	$(PY) -m utils.bench

# make grade LAB=1 SUBMISSIONS=path [OUT=grades/grades.csv] [JOBS=4] [GRADE_ARGS=...]
sandbox:  # bubblewrap confines the grading kernels; installed here when root
	@command -v bwrap >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && echo "Installing Debian's bubblewrap for the grader's sandbox" \
	  && apt-get install -y -qq bubblewrap >/dev/null 2>&1 \
	  || { apt-get update -qq && apt-get install -y -qq bubblewrap; } \
	  || echo "no bubblewrap: the grader falls back to resource limits"; } || true

grade: $(STAMP) sandbox  ## grade a folder of submissions: LAB=1 SUBMISSIONS=path [OUT=] [JOBS=]
	@test -n "$(LAB)" -a -n "$(SUBMISSIONS)" || \
	  { echo "usage: make grade LAB=1 SUBMISSIONS=path [OUT=grades/grades.csv] [JOBS=n]"; exit 2; }
	$(PY) -m utils.grade $(LAB) $(SUBMISSIONS) --out $(or $(OUT),grades/grades.csv) \
	  $(if $(JOBS),--jobs $(JOBS)) $(GRADE_ARGS)

clean:  ## remove generated files by their paths (keeps .venv and your workspace)
	rm -rf book/_build book/labs .pytest_cache .ruff_cache
	$(if $(wildcard $(PY)),$(PY),$(PYTHON)) -m utils.workspace --clean $(NOTEBOOK_IPYNB)
	rm -rf utils/__pycache__ utils/*/__pycache__ tests/__pycache__ tests/*/__pycache__
