"""A bench.json as Markdown: the table `make bench` prints, and the dated release section of the benchmarks page.

`python -m bench.render runs/bench/bench.json --date 2026-11-29 --commit 0426ff5 --hardware "2-core AMD EPYC"`
prints the section. A bench.json may carry a `release` object (`title`, `date`, `commit`, `hardware`,
`versions`, `source`) instead of the flags: the benchmark pages in docs/benchmarks/ keep theirs that way, and
the MkDocs hook (docs/hooks.py) renders them. Imports neither torch nor nertune, so the docs build stays light.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

RELEASE_FIELDS = ("title", "date", "commit", "hardware", "versions", "source")


def _f1_change(r: dict, key: str) -> float | None:
    """A CPU option's F1 against the PyTorch predictor; `<key>_change` where only the difference was recorded."""
    if key in r and "f1_pytorch" in r:
        return r[key] - r["f1_pytorch"]
    return r.get(f"{key}_change")


def _ratio_cell(speedup: float, change: float | None) -> str:
    return f"{speedup:.2f}x" if change is None else f"{speedup:.2f}x, F1 {change:+.4f}"


def _time_to_target_row(r: dict) -> str:
    label = (
        f"| training s to validation F1 {r['target_f1']:.4f} (baseline: run_ner.py defaults, its final F1; "
        "evaluation excluded)"
    )
    if r["time_to_target_s_project"] is None:
        steps = r.get("target_reached_steps")
        missed = "" if steps is None else " by every seed (steps " + "/".join(map(str, steps)) + ")"
        return f"{label} | not reached{missed} | {r['time_to_target_s_baseline']:.1f} | - |"
    if "target_reached_steps" in r:  # bench.json since 2026-12-07: the mean over the F1 seeds
        project = (
            f"{r['time_to_target_s_project']:.1f}, mean of {len(r['target_reached_steps'])} seeds (steps "
            + "/".join(map(str, r["target_reached_steps"]))
            + ")"
        )
    else:
        project = f"{r['time_to_target_s_project']:.1f} (step {r['target_reached_step']})"
    return f"{label} | {project} | {r['time_to_target_s_baseline']:.1f} | {r['time_to_target_speedup']:.2f}x |"


def markdown_table(r: dict) -> str:
    """The comparison table of one bench.json (rows for the CPU options and serving when it has them)."""
    rows = [
        f"| measure ({r['device']}, {r['precision']}) | project | baseline | ratio |",
        "|---|---|---|---|",
        f"| training samples/s | {r['train_samples_per_second_project']:.1f} | "
        f"{r['train_samples_per_second_baseline']:.1f} | {r['train_speedup']:.2f}x |",
        f"| inference sentences/s | {r['inference_sentences_per_second_project']:.1f} | "
        f"{r['inference_sentences_per_second_pipeline']:.1f} (pipeline) | {r['inference_speedup']:.2f}x |",
        f"| test entity F1 (mean of {r['f1_seeds']} seeds) | {r['f1_project']:.4f} | {r['f1_baseline']:.4f} | "
        f"{r['f1_project'] - r['f1_baseline']:+.4f} |",
        _time_to_target_row(r),
        f"| identical entities (project vs pipeline, same words) | {r['entities_identical']} | | |",
    ]
    if "int8_f1_change" in r:
        rows.append(
            f"| int8 inference sentences/s (CPU option) | {r['int8_sentences_per_second']:.1f} | | "
            f"{r['int8_sentences_per_second'] / r['inference_sentences_per_second_pipeline']:.2f}x, "
            f"F1 {r['int8_f1_change']:+.4f} |"
        )
    if "serving_efficiency" in r:
        rows.append(
            "| serving, 32 single-sentence clients (sentences/s) | "
            f"{r['serving_sentences_per_second']:.1f} | {r['serving_offline_sentences_per_second']:.1f} "
            f"(offline batches) | {r['serving_efficiency']:.2f}x, "
            f"p50 {r['serving_latency_p50_ms']:.0f} ms, {r['serving_errors']} errors |"
        )
    for key, name in (("onnx", "ONNX Runtime"), ("onnx_int8", "ONNX Runtime int8")):
        if f"inference_speedup_{key}" in r:
            rows.append(
                f"| {name} inference sentences/s (CPU option) | {r[f'inference_sentences_per_second_{key}']:.1f} | | "
                f"{_ratio_cell(r[f'inference_speedup_{key}'], _f1_change(r, f'f1_{key}'))} |"
            )
    rows += [
        f"| best inference option (F1 within 0.5 point) | {r['inference_best_option']} | | "
        f"{r['inference_best_speedup']:.2f}x |",
        f"| training MFU (vs measured matmul peak {r['matmul_peak_flops'] / 1e9:.0f} GFLOP/s) | {r['mfu']:.1%} | "
        f"{_percent(r.get('mfu_baseline'))} | |",
    ]
    if "inference_mfu" in r:
        rows.append(f"| inference MFU | {r['inference_mfu']:.1%} | | |")
    if "bert_base_train_speedup" in r:
        rows += [
            f"| bert-base size (random), {r['bert_base_steps']} steps: training samples/s | "
            f"{r['bert_base_train_samples_per_second_project']:.1f} | "
            f"{r['bert_base_train_samples_per_second_baseline']:.1f} | {r['bert_base_train_speedup']:.2f}x |",
            f"| bert-base size: training MFU | {r['bert_base_train_mfu_project']:.1%} | "
            f"{r['bert_base_train_mfu_baseline']:.1%} | |",
        ]
    rows.append("")
    return "\n".join(rows)


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value:.1%}"


def render_release(r: dict, release: dict[str, Any] | None = None, heading: str = "##") -> str:
    """One dated section: heading, the commit, hardware and versions it was measured with, the table."""
    meta = {**r.get("release", {}), **(release or {})}
    missing = [key for key in ("date", "commit", "hardware") if not meta.get(key)]
    if missing:
        raise ValueError(f"bench release metadata lacks {', '.join(missing)} (a `release` object or the flags)")
    title = meta.get("title") or r.get("recipe", "make bench")
    versions = meta.get("versions") or {}
    lines = [
        f"{heading} {meta['date']}: {title}",
        "",
        f"- commit: `{meta['commit']}`",
        f"- hardware: {meta['hardware']}",
        f"- recipe: `{r.get('recipe', 'recipes/quickstart.yaml')}`",
    ]
    if versions:
        lines.append("- versions: " + ", ".join(f"{name} {version}" for name, version in versions.items()))
    if meta.get("source"):
        lines.append(f"- source: {meta['source']}")
    return "\n".join([*lines, "", markdown_table(r)])


def render_file(path: str | Path, heading: str = "##") -> str:
    """`render_release` of a bench.json on disk (its `release` object gives the metadata)."""
    return render_release(json.loads(Path(path).read_text(encoding="utf-8")), heading=heading)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.render", description=__doc__.splitlines()[0])
    parser.add_argument("bench_json", help="a bench.json written by `make bench` (runs/bench/bench.json)")
    for field in ("title", "date", "commit", "hardware", "source"):
        parser.add_argument(f"--{field}", default=None, help=f"release {field} (default: the file's `release`)")
    parser.add_argument("--version", action="append", default=[], metavar="NAME=VERSION", help="repeatable")
    args = parser.parse_args(argv)
    release = {field: getattr(args, field) for field in ("title", "date", "commit", "hardware", "source")}
    release = {key: value for key, value in release.items() if value}
    if args.version:
        release["versions"] = dict(item.split("=", 1) for item in args.version)
    result = json.loads(Path(args.bench_json).read_text(encoding="utf-8"))
    try:
        print(render_release(result, release))
    except ValueError as e:
        print(f"error: {args.bench_json}: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
