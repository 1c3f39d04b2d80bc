#!/usr/bin/env bash
# One call on a CUDA machine: the quickstart and the bench in bf16, numbers in one JSON file.
#   bash scripts/gpu_check.sh [OUT_DIR]      (default runs/gpu_check; a few minutes on one H100/H200)
# Either a .venv with a CUDA build of torch (make setup TORCH_SPEC="torch==2.13.0"
# TORCH_INDEX=https://download.pytorch.org/whl/cu128), or, on a machine with torch but no network, the
# .gpu_bundle/ made by scripts/gpu_bundle.sh next to it (wheels, the quickstart model and corpus).
# EXTRA="key=value ..." is appended to both commands; GPU_CHECK_ALLOW_CPU=1 runs it without a GPU (a dry run).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/gpu_check}
mkdir -p "$OUT"
OVERRIDES=()
if [ -d .gpu_bundle ]; then
    PY=${PY:-python3}
    SITE=$(mktemp -d)
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" .gpu_bundle/wheels/*.whl
    export PYTHONPATH="$PWD/src:$SITE${PYTHONPATH:+:$PYTHONPATH}"
    # The encoder travels in bf16 (half the size); training starts from it upcast to fp32.
    $PY - "$SITE/minilm" <<'PYEOF'
import shutil, sys
from pathlib import Path
from safetensors.torch import load_file, save_file
src, dst = Path(".gpu_bundle/minilm"), Path(sys.argv[1])
shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.safetensors"))
save_file({k: v.float() if v.is_floating_point() else v for k, v in load_file(src / "model.bf16.safetensors").items()},
          dst / "model.safetensors")
PYEOF
    OVERRIDES=("model_name_or_path=$SITE/minilm" "data.train_file=$PWD/.gpu_bundle/ner.txt")
else
    PY=${PY:-.venv/bin/python}
fi
read -r -a EXTRA_ARGS <<< "${EXTRA:-}"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 PYTHONUNBUFFERED=1
$PY - <<'PYEOF' | tee "$OUT/versions.txt"
import os, sys, torch, transformers, datasets, pyarrow, accelerate
print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda,
      "transformers", transformers.__version__, "datasets", datasets.__version__, "pyarrow", pyarrow.__version__,
      "accelerate", accelerate.__version__)
print("device", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu")
if not torch.cuda.is_available() and not os.environ.get("GPU_CHECK_ALLOW_CPU"):
    sys.exit("no CUDA device visible to torch (GPU_CHECK_ALLOW_CPU=1 for a dry run)")
PYEOF
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.csv" 2>/dev/null || true
$PY scripts/train.py recipes/quickstart.yaml output_dir="$OUT/quickstart" precision=bf16 report_to=none \
    "${OVERRIDES[@]}" "${EXTRA_ARGS[@]}" 2>&1 | tee "$OUT/quickstart.log"
$PY scripts/bench.py recipes/quickstart.yaml output_dir="$OUT/bench" precision=bf16 \
    "${OVERRIDES[@]}" "${EXTRA_ARGS[@]}" 2>&1 | tee "$OUT/bench.log"
$PY - "$OUT" <<'PYEOF'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
train = json.loads((out / "quickstart" / "metrics.json").read_text())
bench = json.loads((out / "bench" / "bench.json").read_text())
summary = {
    "versions": (out / "versions.txt").read_text().strip(),
    "gpu": ((out / "gpu.csv").read_text().strip().splitlines() or [None])[-1] if (out / "gpu.csv").exists() else None,
    "quickstart_test_f1": train["test_f1"], "quickstart_train_runtime_s": train["train_runtime_s"],
    "quickstart_train_samples_per_second": train["train_samples_per_second"],
    "quickstart_peak_gpu_memory_bytes": train.get("peak_gpu_memory_bytes"), **{f"bench_{k}": v for k, v in bench.items()},
}
(out / "gpu_check.json").write_text(json.dumps(summary, indent=2) + "\n")
print(json.dumps(summary, indent=2))
PYEOF
