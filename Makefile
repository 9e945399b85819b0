# make train: the main job on embedded data; make test: the test suite. Both install into .venv when needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install train test lint describe clean bench bench-data bench-train bench-towers check-resume check-gpu ablations

install: $(STAMP)

# plain pip: torch==2.14.1 and torchvision==0.29.1 come from this machine's disk (uv/poetry would download ~3 GB)
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

train: install
	$(PY) train.py +experiment=quickstart

# two workers, each test file on one of them (its module fixtures built once): 5 min on 2 idle cores (README)
test: install
	$(PY) -m pytest -q -n 2 --dist loadfile

lint: install
	$(VENV)/bin/ruff check src tests train.py experiments

describe: install
	$(VENV)/bin/alexnet-describe

clean:
	rm -rf $(VENV) logs outputs multirun

# the real data pipeline (a store of the 200 shared ImageNet images) feeding the paper's net: data_wait, bottleneck
bench: install
	$(PY) experiments/bench.py

bench-data: install
	$(PY) experiments/bench_data.py
	$(PY) experiments/bench_store.py

# our training step against a plain PyTorch loop; bf16 vs fp32, split vs grouped towers, compile (full size)
bench-train: install
	$(PY) experiments/bench_train.py

# the two-tower net on one process against two (one tower each), same global batch and cores; bytes exchanged
bench-towers: install
	$(PY) experiments/bench_towers.py

# on a machine with one GPU, at most 8 minutes: quickstart on trainer=gpu, device 10-crop, compile, syncs, LRN, speed
check-gpu: install
	$(PY) experiments/check_gpu.py

check-resume: install
	$(PY) experiments/resume_check.py

# the CPU-sized ablation study and its report (experiments/ablations/README.md): 74 minutes on 2 cores (measured)
ablations: install
	$(PY) experiments/ablations.py
