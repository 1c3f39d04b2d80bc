"""`make bench`'s MFU rows, run as `scripts/bench.py` in a subprocess (tests do not import bench/)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers import REPO, subprocess_env, tiny_overrides


@pytest.mark.slow
@pytest.mark.parametrize("bert_base", [False, True])
def test_bench_reports_mfu_of_both_sides_and_the_bert_base_part(tiny_model_dir, synthetic_corpus, tmp_path, bert_base):
    overrides = [
        o for o in tiny_overrides(tiny_model_dir, synthetic_corpus, tmp_path / "bench", "num_train_epochs=2")
        if not o.startswith(("report_to", "logging_steps", "save_total_limit"))
    ]  # fmt: skip
    env = {**subprocess_env(), "BENCH_BERT_BASE": "1" if bert_base else "0"}
    options = ["--f1-seeds", "1", *(["--bert-base-steps", "2"] if bert_base else [])]
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts/bench.py"), str(REPO / "recipes/quickstart.yaml"), *overrides, *options],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    bench = json.loads((tmp_path / "bench" / "bench.json").read_text())
    assert bench["matmul_peak_flops"] > 0
    for key in ("mfu", "mfu_baseline", "inference_mfu"):
        assert 0 < bench[key] < 1, key
    assert bench["mfu"] / bench["mfu_baseline"] == pytest.approx(bench["train_speedup"], rel=1e-6)
    assert ("| training MFU" in result.stdout) and ("| inference MFU" in result.stdout)
    if not bert_base:
        assert not any(key.startswith("bert_base") for key in bench)
        return
    assert bench["bert_base_steps"] == 2
    assert 0 < bench["bert_base_train_mfu_project"] < 1 and 0 < bench["bert_base_train_mfu_baseline"] < 1
    assert bench["bert_base_train_speedup"] == pytest.approx(
        bench["bert_base_train_mfu_project"] / bench["bert_base_train_mfu_baseline"], rel=1e-6
    )
    assert "bert-base size: training MFU" in result.stdout
    assert (tmp_path / "bench" / "bert-base-random" / "config.json").is_file()
