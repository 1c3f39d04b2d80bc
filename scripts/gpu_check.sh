#!/usr/bin/env bash
# One call on a CUDA machine: the quickstart and the bench in bf16, numbers in one JSON file.
#   bash scripts/gpu_check.sh [OUT_DIR]      (default runs/gpu_check; about 5 minutes on one H100/H200)
# Needs a CUDA build of torch in .venv: make setup TORCH_SPEC="torch==2.13.0" TORCH_INDEX=https://download.pytorch.org/whl/cu128
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/gpu_check}
PY=${PY:-.venv/bin/python}
mkdir -p "$OUT"
$PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device visible to torch')"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.csv" || true
$PY scripts/train.py recipes/quickstart.yaml output_dir="$OUT/quickstart" precision=bf16 report_to=none 2>&1 | tee "$OUT/quickstart.log"
$PY scripts/bench.py recipes/quickstart.yaml output_dir="$OUT/bench" precision=bf16 2>&1 | tee "$OUT/bench.log"
$PY - "$OUT" <<'PYEOF'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
train = json.loads((out / "quickstart" / "metrics.json").read_text())
bench = json.loads((out / "bench" / "bench.json").read_text())
summary = {
    "gpu": (out / "gpu.csv").read_text().strip().splitlines()[-1] if (out / "gpu.csv").exists() else None,
    "quickstart_test_f1": train["test_f1"], "quickstart_train_runtime_s": train["train_runtime_s"],
    "quickstart_train_samples_per_second": train["train_samples_per_second"],
    "quickstart_peak_gpu_memory_bytes": train.get("peak_gpu_memory_bytes"), **{f"bench_{k}": v for k, v in bench.items()},
}
(out / "gpu_check.json").write_text(json.dumps(summary, indent=2) + "\n")
print(json.dumps(summary, indent=2))
PYEOF
