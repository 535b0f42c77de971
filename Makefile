# make demo   -- install into .venv, run the default pipeline (BasicMotions demo) and write
#                results/report.html
# make test   -- install into .venv and run the test suite
#
# The packages are installed at the versions envs/*.yaml pin (envs/pip-constraints.txt).
#
# TORCH is what pip installs before the project. torch==2.13.0 is the CPU wheel where a
# local wheel is configured and PyPI's CUDA build on a Linux GPU machine; pass any other
# pip requirement (and index options) to choose a build, e.g. make TORCH="torch==2.13.0 --index-url URL".
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
CORES ?= 2
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test clean-results

install: $(STAMP)

$(STAMP): pyproject.toml envs/pip-constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -c envs/pip-constraints.txt -e ".[test]"
	touch $@

demo: install
	$(BIN)/snakemake --cores $(CORES)
	$(BIN)/snakemake --cores $(CORES) --report results/report.html

test: install
	$(BIN)/pytest -q

clean-results:
	rm -rf results/* .snakemake/incomplete
