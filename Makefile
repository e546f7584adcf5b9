# One command sets up and runs the main job; one command runs the tests.
#   make run            venv + install + the main job: MMLMF beside BPR, LightGCN, SimpleX and CCL on
#                       ml-100k (ships inside recbole, no download), one table; a few minutes on 2 cores
#   make test           venv + install + the test suite (about 2 minutes on 2 cores; the slow tests left out)
#   make test-slow      the slow end-to-end tests (a real Ray search, kill and resume, a wheel install)
#   make search-ml100k  the searches the defaults and the main job come from (about 20 minutes on 2 cores)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup run test test-slow search-ml100k

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
	$(BIN)/python benchmarks/ml100k_main.py

test: setup
	$(BIN)/python -m pytest -q tests

test-slow: setup
	$(BIN)/python -m pytest -q -m slow tests

# Every model gets the same search on ml-100k's validation split: 10 random trials (seed 2020), one at a
# time on one thread, ASHA, under properties/search/ml-100k/budget.yaml. Each writes trials.csv,
# best.yaml and best_test.json (the best trial's test result, not used to choose) to
# benchmarks/results/ml100k_search/<label>; Ray's trial folders are removed afterwards.
SEARCH_OUT := benchmarks/results/ml100k_search
SEARCH_SPACES := properties/search/ml-100k
# $(call search,LABEL,MODEL[,EXTRA OVERRIDES])
define search
	rm -rf $(SEARCH_OUT)/$(1)
	$(BIN)/python run_recbole_mml.py tune --model=$(2) --dataset=ml-100k $(3) \
		--config_files=$(SEARCH_SPACES)/budget.yaml --params_file=$(SEARCH_SPACES)/$(1).yaml \
		--num_samples=10 --max_concurrent=1 --cpus_per_trial=1 --grace_period=2 --reduction_factor=3 \
		--output=$(SEARCH_OUT)/$(1)
	rm -rf $(SEARCH_OUT)/$(1)/ray $(SEARCH_OUT)/$(1)/log_tensorboard $(SEARCH_OUT)/$(1)/search.json \
		$(SEARCH_OUT)/$(1)/search_space.yaml
endef

search-ml100k: setup
	$(call search,MMLMF,MMLMF)
	$(call search,MMLSimpleX,MMLSimpleX)
	$(call search,MMLLightGCN,MMLLightGCN)
	$(call search,CCL,MMLMF,--loss_type=CCL)
	$(call search,BPR,BPR)
	$(call search,LightGCN,LightGCN)
	$(call search,SimpleX,SimpleX)
