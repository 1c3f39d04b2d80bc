"""`nertune retrain RUN --new FILE ...`: continue a run on new data, and promote the result only behind a gate.

1. The data, written once into `CANDIDATE/data/` (JSONL, the training scheme, `data.label_map` applied) so the
   candidate's recipe.yaml reproduces it: `new.jsonl` (every --new file), `replay.jsonl` (the run's own training
   split, rehearsed through `data.replay_file`), `validation.jsonl` and `test.jsonl` (the run's splits, or
   --test-file: one fixed test set for both models).
2. The candidate: `run_training` from RUN (`label_mismatch=extend`: new entity types grow the head).
3. Both models scored by `run_evaluation` on that test set; the candidate is promoted only when its micro F1 is
   at most `tolerance` points below the current model's and no entity type's F1 drops by more than
   `per_type_tolerance` points.
4. `CANDIDATE/report.md` and `comparison.json` either way; the decision and both scores in its metrics.json.

Promotion points the symlink `PROMOTE_DIR/current` (default: RUN's parent; the link's own dir when RUN is a
symlink) at the candidate dir, swapped atomically (`os.replace`), so a server started on `PROMOTE_DIR/current`
reloads by resolving that path again.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nertune.data import load_split, load_splits
from nertune.errors import NertuneError
from nertune.evaluation.run import write_json
from nertune.model.rundir import RunDir
from nertune.recipe.schema import apply_overrides
from nertune.recipe.sections import DataConfig
from nertune.training.run import run_training

logger = logging.getLogger(__name__)

PROMOTED_LINK = "current"  # PROMOTE_DIR/current -> the promoted run dir
COLUMNS = ("tokens", "ner_tags", "document_id", "sentence_id")


class RetrainError(NertuneError):
    """A retrain that cannot start: no saved recipe in the run, a bad tolerance, an output dir in use."""


def _write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps({key: row[key] for key in COLUMNS}, ensure_ascii=False) + "\n")
    return path


def materialize_data(
    old: DataConfig, new_files: Sequence[str], data_dir: Path, test_file: str | None
) -> dict[str, Path]:
    """The four data files of the candidate from the run's data section `old` (module docstring, step 1)."""
    splits, _ = load_splits(old)  # what the run trained on (with its own rehearsal, if it had one)
    test = splits["test"]
    if test_file:
        test, _ = load_split(old.model_copy(update={"test_file": test_file}), "test")
    new_rows: list[dict[str, Any]] = []
    for file in new_files:
        # Each file read on its own, its scheme detected on itself, converted to the training scheme.
        ds, _ = load_split(old.model_copy(update={"dataset_name": None, "train_file": file}), "train")
        offset = max((row["sentence_id"] for row in new_rows), default=-1) + 1  # ids stay unique across files
        new_rows += [{**row, "sentence_id": row["sentence_id"] + offset} for row in ds]
    return {
        "train": _write_jsonl(data_dir / "new.jsonl", new_rows),
        "replay": _write_jsonl(data_dir / "replay.jsonl", list(splits["train"])),
        "validation": _write_jsonl(data_dir / "validation.jsonl", list(splits["validation"])),
        "test": _write_jsonl(data_dir / "test.jsonl", list(test)),
    }


def _evaluate(model_dir: Path, overrides: list[str], name: str, bootstrap: int) -> dict:
    from nertune.evaluation.run import run_evaluation

    if "split" in inspect.signature(run_evaluation).parameters:
        return run_evaluation(model_dir, overrides, split="test", name=name, bootstrap=bootstrap)
    # The run_evaluation before its rewrite took these settings as key=value overrides.
    return run_evaluation(model_dir, [*overrides, "split=test", f"name={name}", f"bootstrap={bootstrap}"])


def compare(current: dict, candidate: dict, tolerance: float, per_type_tolerance: float) -> dict[str, Any]:
    """The gate: F1 in points (x100) of both models, overall and per entity type with gold support."""
    drop = round(100 * (current["f1"] - candidate["f1"]), 4)
    reasons, per_type = [], {}
    for type_ in sorted(set(current["per_type"]) | set(candidate["per_type"])):
        cur, cand = current["per_type"].get(type_), candidate["per_type"].get(type_)
        support = max(row["support"] for row in (cur, cand) if row is not None)
        cur_f1, cand_f1 = (cur or {}).get("f1", 0.0), (cand or {}).get("f1", 0.0)
        type_drop = round(100 * (cur_f1 - cand_f1), 4)
        per_type[type_] = {"current_f1": cur_f1, "candidate_f1": cand_f1, "drop_points": type_drop, "support": support}
        if support and type_drop > per_type_tolerance:
            reasons.append(f"{type_} F1 drops {type_drop:.2f} points (> per-type tolerance {per_type_tolerance})")
    if drop > tolerance:
        change = f"drops {drop:.2f}" if drop > 0 else f"gains only {-drop:.2f}"
        reasons.insert(0, f"micro F1 {change} points (the gate allows a drop of at most tolerance {tolerance})")
    gated = {t: r for t, r in per_type.items() if r["support"]}
    worst = max(gated, key=lambda t: gated[t]["drop_points"], default=None)
    why = reasons or [
        f"micro F1 {'drops' if drop > 0 else 'gains'} {abs(drop):.2f} points (tolerance {tolerance})"
        + (f"; largest per-type drop {worst} {gated[worst]['drop_points']:.2f} points" if worst else "")
        + f" (per-type tolerance {per_type_tolerance})"
    ]
    return {
        "promote": not reasons,
        "reasons": why,
        "tolerance_points": tolerance,
        "per_type_tolerance_points": per_type_tolerance,
        "current_f1": current["f1"],
        "candidate_f1": candidate["f1"],
        "f1_drop_points": drop,
        "current_f1_ci95": current.get("f1_ci95"),
        "candidate_f1_ci95": candidate.get("f1_ci95"),
        "per_type": per_type,
    }


def promote(candidate: Path, promote_dir: Path) -> Path:
    """Point `promote_dir/current` at `candidate` in one atomic rename; returns the link."""
    promote_dir.mkdir(parents=True, exist_ok=True)
    link = promote_dir / PROMOTED_LINK
    if link.exists() and not link.is_symlink():
        raise RetrainError(f"{link} exists and is not a symlink: cannot point it at {candidate}")
    tmp = promote_dir / f".{PROMOTED_LINK}.{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(candidate.resolve(), target_is_directory=True)
    os.replace(tmp, link)
    return link


def _link_dir(run_dir: str | Path, current: Path) -> Path:
    """The default PROMOTE_DIR: RUN's parent. RUN given as the `current` link itself (`/srv/current ->
    /data/runs/v1`) promotes beside the link, which is what a server started on it resolves again, not beside
    the run it points at."""
    given = Path(os.path.expanduser(os.fspath(run_dir)))
    return given.absolute().parent if given.is_symlink() else current.parent


def format_report(comparison: dict, current_dir: Path, candidate_dir: Path, test_file: Path) -> str:
    decision = "PROMOTED" if comparison["promote"] else "NOT PROMOTED"
    lines = [
        f"# Retrain: {decision}",
        "",
        f"- current: `{current_dir}`",
        f"- candidate: `{candidate_dir}`",
        f"- test set: `{test_file}`",
        f"- why: {'; '.join(comparison['reasons'])}",
        "",
        "| | current F1 | candidate F1 | drop (points) | support |",
        "|---|---:|---:|---:|---:|",
        f"| micro | {comparison['current_f1']:.4f} | {comparison['candidate_f1']:.4f} | "
        f"{comparison['f1_drop_points']:.2f} | |",
    ]
    for type_, row in comparison["per_type"].items():
        lines.append(
            f"| {type_} | {row['current_f1']:.4f} | {row['candidate_f1']:.4f} | {row['drop_points']:.2f} | "
            f"{row['support']} |"
        )
    if comparison.get("promoted_link"):
        lines += ["", f"`{comparison['promoted_link']}` -> `{candidate_dir}`"]
    return "\n".join(lines) + "\n"


def run_retrain(
    run_dir: str | Path,
    new_files: Sequence[str],
    overrides: Sequence[str] = (),
    *,
    output_dir: str | Path | None = None,
    test_file: str | None = None,
    tolerance: float = 0.5,
    per_type_tolerance: float = 2.0,
    promote_dir: str | Path | None = None,
    bootstrap: int = 1000,
) -> dict[str, Any]:
    """Continue `run_dir` on `new_files`, compare, promote behind the gate (module docstring); returns the
    comparison (`promote`, `reasons`, scores, `promoted_link` when promoted)."""
    if not new_files:
        raise RetrainError("retrain needs at least one --new FILE")
    run = RunDir.load(run_dir)
    current = run.path.resolve()
    saved = run.load_recipe()  # a saved recipe that is not valid raises RecipeError, naming the file
    if saved is None:
        raise RetrainError(f"{current} has no recipe.yaml: retrain needs the run's data (its splits)")
    out = (
        Path(output_dir) if output_dir else current.parent / f"{current.name}-retrain-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    if out.exists() and any(out.iterdir()):
        raise RetrainError(f"--output-dir {out} exists and is not empty")
    files = materialize_data(saved.data, new_files, out / "data", test_file)
    internal = {
        "model_name_or_path": str(current),
        "output_dir": str(out),
        "label_mismatch": "extend",
        "data.dataset_name": None,
        "data.train_file": str(files["train"]),
        "data.validation_file": str(files["validation"]),
        "data.test_file": str(files["test"]),
        "data.replay_file": str(files["replay"]),
        "data.tag_scheme": saved.data.train_scheme,  # the files above are written in it
        "data.label_map": None,  # already applied to them
        "push_to_hub": False,  # a candidate is not published
        "resume_from_checkpoint": None,
    }
    recipe = apply_overrides(apply_overrides(saved, internal), list(overrides))
    n_new, n_old = (sum(1 for _ in open(files[k], encoding="utf-8")) for k in ("train", "replay"))
    if (
        not any(item.startswith("data.replay_ratio=") for item in overrides)
        and recipe.data.replay_ratio * n_new > n_old
    ):
        # Less old data than the ratio asks for: rehearse all of it.
        recipe.data.replay_ratio = n_old / n_new
        logger.info(
            "retrain: %d old sentences, %d new: data.replay_ratio=%.4f replays all", n_old, n_new, n_old / n_new
        )
    metrics = run_training(recipe)
    name = f"retrain-{out.name}"
    eval_overrides = [f"data.test_file={files['test']}", "data.unseen_label_policy=O"]
    scores_current = _evaluate(current, eval_overrides, name, bootstrap)
    scores_candidate = _evaluate(out.resolve(), eval_overrides, name, bootstrap)
    comparison = compare(scores_current, scores_candidate, tolerance, per_type_tolerance)
    comparison.update(
        {"current_dir": str(current), "candidate_dir": str(out.resolve()), "test_file": str(files["test"])}
    )
    if comparison["promote"]:
        comparison["promoted_link"] = str(
            promote(out, Path(promote_dir) if promote_dir else _link_dir(run_dir, current))
        )
    write_json(out / "comparison.json", comparison)
    (out / "report.md").write_text(format_report(comparison, current, out.resolve(), files["test"]), encoding="utf-8")
    metrics["retrain"] = {k: v for k, v in comparison.items() if k != "per_type"}
    metrics["retrain"]["per_type"] = comparison["per_type"]
    write_json(out / "metrics.json", metrics)
    logger.info("retrain: %s (%s)", "promoted" if comparison["promote"] else "not promoted", comparison["reasons"][0])
    print(format_report(comparison, current, out.resolve(), files["test"]))
    return comparison
