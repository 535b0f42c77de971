# make demo       -- install into .venv, run the default pipeline (BasicMotions demo) and write
#                    results/reports/demo/report.html
# make demo-docs  -- the demo, then its tables and figures copied into docs/ (the README's numbers)
# make test       -- install into .venv and run the test suite
# make test-fast  -- the unit tests only (no workflow runs, no SLURM, no GPU checks): about 2 minutes
# make gpu-check  -- install into .venv and check the CUDA path (benchmarks/gpu_check.py; on a
#                    machine without a GPU it runs the same checks on the CPU)
# make qgaf-docs  -- run docs/qgaf_demo.yaml, then with 100 shots, and copy their tables into docs/
#                    (docs/qgaf.md's numbers; tests/test_docs_numbers.py checks them)
# make dtype-docs -- the same for docs/dtype_demo.yaml, float16 then float32 images
#                    (docs/configuration-guide.md's images.dtype numbers)
# make bench-docs -- run the CPU benchmarks into benchmarks/results/ (about half an hour on two
#                    cores) and render the docs' tables from their CSVs (benchmarks/docs_tables.py)
# make gpu-bench  -- install into .venv and measure packed student steps, the lab grid's projected
#                    hours and a trained slice against its projection at each training.precision
#                    (benchmarks/gpu_bench.py, within its --budget on one GPU; CSVs in benchmarks/results)
#
# The packages are installed at the versions envs/*.yaml pin (envs/pip-constraints.txt).
#
# TORCH is what pip installs before the project. torch==2.13.0 is the CPU wheel where a local
# wheel is configured and PyPI's CUDA build on a Linux GPU machine. CUDA=cu128 (any tag of the
# PyTorch wheel index) asks for that CUDA build explicitly, by its local version, so that an
# installed CPU build is replaced; or pass any pip requirement and index options as TORCH.
# Changing TORCH or CUDA reinstalls torch.
PYTHON ?= python3
VENV ?= .venv
TORCH_VERSION ?= 2.13.0
CUDA ?=
ifeq ($(CUDA),)
TORCH ?= torch==$(TORCH_VERSION)
else
TORCH ?= torch==$(TORCH_VERSION)+$(CUDA) --extra-index-url https://download.pytorch.org/whl/$(CUDA)
endif
CORES ?= 2
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH_STAMP := $(VENV)/.torch-requirement

.PHONY: install demo demo-docs qgaf-docs dtype-docs bench-docs test test-fast gpu-check gpu-bench clean-results FORCE

install: $(STAMP)

# Rewritten only when TORCH changes, so that the install below runs again.
$(TORCH_STAMP): FORCE
	@mkdir -p $(VENV)
	@echo '$(TORCH)' | cmp -s - $@ || echo '$(TORCH)' > $@

$(STAMP): pyproject.toml envs/pip-constraints.txt $(TORCH_STAMP)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -c envs/pip-constraints.txt -e ".[test]"
	$(BIN)/python -m gafkd.train.devices
	touch $@

demo: install
	$(BIN)/snakemake --cores $(CORES)
	$(BIN)/snakemake --cores $(CORES) --report results/reports/demo/report.html

# The demo's tables and two figures into docs/, where the README's numbers come from
# (tests/test_docs_numbers.py checks the README against docs/demo_tables.md).
demo-docs: demo
	cp results/reports/demo/tables.md docs/demo_tables.md
	cp results/reports/demo/basicmotions_alpha.png docs/demo_alpha.png
	cp results/reports/demo/basicmotions_teachers_vs_students.png docs/demo_teachers_vs_students.png

# Two pytest workers, each taking whole test files (a file's workflow run is set up once).
TEST_WORKERS ?= 2
test: install
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile

test-fast: install
	GAFKD_FUZZ_EXAMPLES=$${GAFKD_FUZZ_EXAMPLES:-20} $(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile \
		-m "not slow and not slurm and not gpu"

gpu-check: install
	$(BIN)/python benchmarks/gpu_check.py

# An experiment the docs quote, run from nothing in a folder of its own (so that its tables are
# the current code's), its report's tables copied into docs/:
# $(call experiment_tables,FOLDER,CONFIG FILES,REPORT NAME,DOCS FILE)
define experiment_tables
	$(BIN)/snakemake --cores $(CORES) --directory $(1) --snakefile Snakefile --configfile $(2)
	cp $(1)/results/reports/$(3)/tables.md $(4)
endef

# docs/qgaf.md's demo grid, exact and then with shots (only what reads the Q-GAF caches reruns).
QGAF_RUN := $(or $(TMPDIR),/tmp)/gafkd-qgaf-demo
qgaf-docs: install
	rm -rf $(QGAF_RUN)
	$(call experiment_tables,$(QGAF_RUN),docs/qgaf_demo.yaml,qgaf_demo,docs/qgaf_demo_tables.md)
	$(call experiment_tables,$(QGAF_RUN),docs/qgaf_demo.yaml docs/qgaf_demo_shots.yaml,qgaf_demo_shots,docs/qgaf_demo_shots_tables.md)

# docs/configuration-guide.md's images.dtype comparison: GASF teachers from float16, then float32 images.
DTYPE_RUN := $(or $(TMPDIR),/tmp)/gafkd-dtype-demo
dtype-docs: install
	rm -rf $(DTYPE_RUN)
	$(call experiment_tables,$(DTYPE_RUN),docs/dtype_demo.yaml,dtype_demo,docs/dtype_demo_tables.md)
	$(call experiment_tables,$(DTYPE_RUN),docs/dtype_demo.yaml docs/dtype_demo_float32.yaml,dtype_demo_float32,docs/dtype_demo_float32_tables.md)

# The CPU benchmarks whose CSVs the docs' tables show, one after the other (they time the machine).
OVERHEAD_RUN := $(or $(TMPDIR),/tmp)/gafkd-job-overhead
bench-docs: install
	$(BIN)/python benchmarks/gaf.py
	$(BIN)/python benchmarks/persistence.py
	$(BIN)/python benchmarks/train_step.py
	$(BIN)/python benchmarks/student_step.py
	$(BIN)/python benchmarks/sp_cache.py
	$(BIN)/python benchmarks/images_job.py
	$(BIN)/python benchmarks/student_pack.py --packs 1 8 --archs wrn16-1 --fusion members grouped gemm
	$(BIN)/python benchmarks/grid_projection.py --by-job benchmarks/results/grid_projection_by_job.csv
	$(BIN)/python benchmarks/memory_table.py
	$(BIN)/python benchmarks/pack_width.py
	rm -rf $(OVERHEAD_RUN)
	$(BIN)/snakemake --cores $(CORES) --directory $(OVERHEAD_RUN) --snakefile Snakefile \
		--configfile config.yaml benchmarks/job_overhead.yaml
	$(BIN)/python benchmarks/job_overhead.py $(OVERHEAD_RUN)/results
	$(BIN)/python benchmarks/docs_tables.py

gpu-bench: install
	$(BIN)/python benchmarks/gpu_bench.py

clean-results:
	rm -rf results/* .snakemake/incomplete
