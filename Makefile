# One command sets up and runs the main job; one command runs the tests.
#   make run    venv + install + MMLMF on ml-100k (ships inside recbole, no download)
#   make test   venv + install + the test suite (about 2 minutes on 2 cores; the slow tests left out)
#   make test-slow  the slow end-to-end tests (a real Ray search, kill and resume, a wheel install)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup run test test-slow

setup: $(VENV)/.installed

# torch 2.13.0 first (a CPU wheel here; an unpinned torch pulls a CUDA build), then RecBole
# without its 2023 pins, then recbole_mml with the dependencies RecBole really needs.
$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q --no-deps recbole==1.2.1
	$(BIN)/python -m pip install -q -e ".[test,baselines]"
	touch $@

run: setup
	$(BIN)/python run_recbole_mml.py --model=MMLMF --dataset=ml-100k

test: setup
	$(BIN)/python -m pytest -q tests

test-slow: setup
	$(BIN)/python -m pytest -q -m slow tests
