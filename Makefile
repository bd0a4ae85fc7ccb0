# lit_digest: two commands on a fresh clone, `make demo` and `make test`; each sets itself up.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test test-fast lint bench measured mutate gpu-wheels gpu-suite clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)  ## a local venv with lit_digest and its dev tools

demo: $(STAMP)  ## BYOL on scikit-learn digits, offline: trained vs random-init probe and kNN accuracy
	$(PY) -m lit_digest fit --config configs/quickstart.yaml --trainer.enable_progress_bar false

test: $(STAMP)  ## the test suite but the measured rows (make measured), one pytest-xdist worker per core (at most 4)
	WANDB_MODE=offline OMP_NUM_THREADS=1 $(PY) -m pytest -q -p no:cacheprovider -m "not measured" -n auto --maxprocesses 4 --dist worksteal --durations=15

test-fast: $(STAMP)  ## without the end-to-end runs
	WANDB_MODE=offline OMP_NUM_THREADS=1 $(PY) -m pytest -q -p no:cacheprovider -m "not slow"

lint: $(STAMP)
	$(PY) -m ruff check lit_digest tests benchmarks

bench: $(STAMP)  ## every benchmarks/*.py: speed and memory of each method (CPU, and CUDA when present)
	@for bench in benchmarks/*.py; do echo "== $$bench"; WANDB_MODE=disabled $(PY) $$bench || exit 1; done

measured: $(STAMP)  ## re-run the README's fast measured rows and compare; list slow rows older than their code
	OMP_NUM_THREADS=1 $(PY) -m lit_digest measured

mutate: $(STAMP)  ## mutation testing of the numeric modules (pyproject.toml [tool.lit_digest.mutate]; MODULES=... for some): catch rate and survivors per module, about 40 minutes on one core
	$(PY) .ci/mutate.py $(MODULES)

gpu-wheels: $(STAMP)  ## the wheels a GPU machine without network lacks (benchmarks/gpu_wheels.txt) into .whl/, checked
	$(PY) benchmarks/gpu_wheels.py --download .whl

gpu-suite: $(STAMP)  ## every GPU number in one process (benchmarks/gpu_suite.py): runs/gpu_suite/suite.md; quick on a CPU
	WANDB_MODE=disabled $(PY) benchmarks/gpu_suite.py --out runs/gpu_suite

clean:
	rm -rf runs lightning_logs .pytest_cache .mutmut
