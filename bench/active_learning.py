"""`make active-learning`: does choosing what to label by the model's uncertainty beat labelling at random?

Simulated annotation rounds on the quickstart corpus (recipes/quickstart.yaml: all-MiniLM-L6-v2 on WNUT-16):
the training split is the pool and its gold tags the annotator. Both strategies start from the same seeded
random seed set (topped up with one sentence of every entity type the draw missed, so every model knows
every label the validation and test splits use). Each round trains a model on the labelled sentences (the
recipe with a short fixed schedule), scores its test F1, and `nertune select` (`select_examples`) picks the
next `step` sentences from the rest of the pool: `uncertainty` (least confidence) or `random` (seeded),
so both see equal label budgets. Results: `<out>/results.json`, the plot `docs/images/active-learning.png`
and the dated page `docs/active-learning.md` (the table, the plot, and the budget at which uncertainty
selection first reaches random selection's final F1).
"""

from __future__ import annotations

import datetime
import json
import logging
import random
import time
from pathlib import Path
from typing import Any

from nertune.data import load_splits
from nertune.inference.select import select_examples
from nertune.recipe.schema import load_recipe
from nertune.schemes import parse_tag
from nertune.training.run import run_training

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
STRATEGIES = ("uncertainty", "random")
# A short schedule: every round retrains from the pretrained encoder.
TRAINING = ("eval_strategy=no", "save_strategy=no", "load_best_model_at_end=false")
TRAINING += ("report_to=none", "logging_steps=50")


def _write_conll(path: Path, sentences: list[tuple[list[str], list[str]]]) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for tokens, tags in sentences:
            f.writelines(f"{token}\t{tag}\n" for token, tag in zip(tokens, tags))
            f.write("\n")
    return path


def _types(tags: list[str]) -> set[str]:
    return {parse_tag(tag)[1] for tag in tags if tag != "O"}


def seed_set(pool: list[tuple[list[str], list[str]]], size: int, seed: int) -> list[int]:
    """`size` seeded random pool indices, plus one sentence of each entity type the draw missed."""
    rng = random.Random(seed)
    chosen = rng.sample(range(len(pool)), size)
    covered = set().union(*(_types(pool[i][1]) for i in chosen))
    for i in rng.sample(range(len(pool)), len(pool)):
        missing = _types(pool[i][1]) - covered
        if missing and i not in chosen:
            chosen.append(i)
            covered |= missing
    return chosen


def _train(
    recipe_path: str, out: Path, labelled, validation: Path, test: Path, seed: int, epochs: int
) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    train_file = _write_conll(out / "labelled.conll", labelled)
    recipe = load_recipe(
        recipe_path,
        [
            f"output_dir={out / 'model'}",
            f"data.train_file={train_file}",
            f"data.validation_file={validation}",
            f"data.test_file={test}",
            "data.tag_scheme=IOB2",
            f"seed={seed}",
            f"num_train_epochs={epochs}",
            *TRAINING,
        ],
    )
    return run_training(recipe)


def run_active_learning(
    out_dir: str | Path = "runs/active-learning",
    recipe_path: str = str(REPO / "recipes/quickstart.yaml"),
    seed_size: int = 100,
    step: int = 50,
    rounds: int = 2,
    seed: int = 0,
    pool_size: int | None = 1000,
    docs_dir: str | Path = REPO / "docs",
    epochs: int = 6,
) -> dict[str, Any]:
    """Run the simulation; returns (and writes) `{"budgets", "f1": {strategy: [...]}, ...}`. `pool_size`: a
    seeded sample of the training split as the pool (None or 0: all of it), for a shorter run."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    splits, _ = load_splits(load_recipe(recipe_path, []).data)
    pool = list(zip(splits["train"]["tokens"], splits["train"]["ner_tags"]))
    if pool_size and pool_size < len(pool):
        pool = random.Random(seed).sample(pool, pool_size)
    validation = _write_conll(out / "validation.conll", list(zip(splits["validation"]["tokens"],
                                                                  splits["validation"]["ner_tags"])))  # fmt: skip
    test = _write_conll(out / "test.conll", list(zip(splits["test"]["tokens"], splits["test"]["ner_tags"])))
    started = time.perf_counter()
    first = seed_set(pool, seed_size, seed)
    metrics = _train(recipe_path, out / "seed", [pool[i] for i in first], validation, test, seed, epochs)
    budgets = [len(first)]
    f1 = {strategy: [metrics["test_f1"]] for strategy in STRATEGIES}
    calibration = {strategy: [metrics.get("calibration")] for strategy in STRATEGIES}
    for strategy in STRATEGIES:
        labelled, model_dir = list(first), out / "seed" / "model"
        for r in range(1, rounds + 1):
            unlabelled = sorted(set(range(len(pool))) - set(labelled))
            pool_file = out / strategy / f"round{r}-pool.jsonl"
            pool_file.parent.mkdir(parents=True, exist_ok=True)
            pool_file.write_text(
                "".join(json.dumps({"id": i, "tokens": pool[i][0]}, ensure_ascii=False) + "\n" for i in unlabelled),
                encoding="utf-8",
            )
            chosen = select_examples(
                model_dir, pool_file, out / strategy / f"round{r}-selected.jsonl", step, strategy, seed=seed + r
            )
            labelled += [record["id"] for record in chosen]  # the annotator: the pool's gold tags
            run = out / strategy / f"round{r}"
            metrics = _train(recipe_path, run, [pool[i] for i in labelled], validation, test, seed, epochs)
            model_dir = run / "model"
            if strategy == STRATEGIES[0]:
                budgets.append(len(labelled))
            f1[strategy].append(metrics["test_f1"])
            calibration[strategy].append(metrics.get("calibration"))
            logger.info("%s round %d: %d labelled, test F1 %.4f", strategy, r, len(labelled), metrics["test_f1"])
    results = {
        "date": datetime.date.today().isoformat(),
        "recipe": str(Path(recipe_path).relative_to(REPO)) if Path(recipe_path).is_relative_to(REPO) else recipe_path,
        "training": [f"num_train_epochs={epochs}", *TRAINING],
        "seed": seed,
        "pool_size": len(pool),
        "train_split_size": len(splits["train"]),
        "n_test_sentences": len(splits["test"]),
        "budgets": budgets,
        "epochs": epochs,
        "f1": f1,
        "calibration": calibration,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    write_page(results, Path(docs_dir))
    return results


def budget_reaching(budgets: list[int], f1: list[float], target: float) -> int | None:
    """The first label budget whose F1 reaches `target` (None: never)."""
    return next((b for b, score in zip(budgets, f1) if score >= target), None)


def _ece_change(calibration: dict[str, float]) -> str:
    return f"{calibration['ece_before']:.3f} -> {calibration['ece_after']:.3f}"


def write_page(results: dict[str, Any], docs_dir: Path) -> Path:
    """docs/active-learning.md with the table and docs/images/active-learning.png, from a run's results
    (`results.json`), so a finished run's page can be redrawn without training again."""
    from nertune.evaluation.plots import _pyplot

    budgets, f1 = results["budgets"], results["f1"]
    images = docs_dir / "images"
    images.mkdir(parents=True, exist_ok=True)
    plt = _pyplot()
    if plt is not None:
        fig, ax = plt.subplots(figsize=(6, 4))
        for strategy in STRATEGIES:
            ax.plot(budgets, f1[strategy], marker="o", label=strategy)
        ax.set_xlabel("labelled training sentences")
        ax.set_ylabel("test entity F1")
        ax.set_title("active learning on WNUT-16 (all-MiniLM-L6-v2)")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(images / "active-learning.png", dpi=100)
        plt.close(fig)
    target = f1["random"][-1]
    reached = budget_reaching(budgets, f1["uncertainty"], target)
    rows = "\n".join(f"| {b} | {u:.4f} | {r:.4f} |" for b, u, r in zip(budgets, f1["uncertainty"], f1["random"]))
    if target <= 0.0:
        first = next(((b, u) for b, u in zip(budgets, f1["uncertainty"]) if u > 0.0), None)
        verdict = f"Random selection's models tag no test entity right up to {budgets[-1]} sentences (F1 0), so " + (
            f"uncertainty selection is past random selection's final F1 from its first F1 above 0: "
            f"**{first[0]} labelled sentences** (F1 {first[1]:.4f})."
            if first
            else "neither strategy gets above F1 0 within this budget."
        )
    elif reached is not None:
        verdict = (
            f"Uncertainty selection reaches random selection's final F1 ({target:.4f} at {budgets[-1]} sentences) "
            f"with **{reached} labelled sentences**."
        )
    else:
        verdict = (
            f"Uncertainty selection did not reach random selection's final F1 ({target:.4f}) within "
            f"{budgets[-1]} labelled sentences."
        )
    runs = results.get("calibration", {})  # the seed model is the first of both strategies
    fitted = [c for c in [*runs.get(STRATEGIES[0], []), *runs.get(STRATEGIES[1], [])[1:]] if c]
    calibration = (
        "Each model's scores are calibrated on the validation split (`calibration` in config.json's `nertune` "
        f"section): temperatures "
        f"{min(c['temperature'] for c in fitted):.2f} to {max(c['temperature'] for c in fitted):.2f}, word-level "
        f"ECE {', '.join(_ece_change(c) for c in fitted)} (before -> after)."
        if fitted
        else ""
    )
    pool = f"a seeded sample of {results['pool_size']} of the {results['train_split_size']} training sentences"
    if results["pool_size"] == results["train_split_size"]:
        pool = f"the training split ({results['pool_size']} sentences)"
    page = f"""# Active learning: uncertainty vs random selection ({results["date"]})

Simulated annotation rounds (`make active-learning`, `bench/active_learning.py`): the quickstart recipe
(`{results["recipe"]}`: all-MiniLM-L6-v2 on WNUT-16); the unlabelled pool is {pool}, its gold tags the
annotator. Both strategies start from the same seeded random
seed set of {budgets[0]} sentences; every round `nertune select` adds the same number of sentences
(`--strategy uncertainty`: least confidence per word, averaged per sentence; `--strategy random`: a seeded
draw), and a model is retrained from the pretrained encoder with a short schedule
(`{" ".join(results["training"])}`). F1: entity level on the {results["n_test_sentences"]} test sentences,
one training seed ({results["seed"]}). Run on 2 shared CPU cores in {results["wall_seconds"] / 60:.0f} minutes.

| labelled sentences | uncertainty F1 | random F1 |
|---:|---:|---:|
{rows}

{verdict}

{calibration}

![test F1 per label budget](images/active-learning.png)

A small run, sized for 2 CPU cores (budgets of {budgets[0]} to {budgets[-1]} sentences, {results["epochs"]} epochs per
model): F1 at such budgets is far below the quickstart's full-data F1, and with one seed and few rounds,
differences of a few points are within what another seed would move. A larger run: `make active-learning
ARGS="--seed-size 200 --step 200 --rounds 4 --pool-size 0"` (`--pool-size 0`: the whole training split).
"""
    path = docs_dir / "active-learning.md"
    path.write_text(page, encoding="utf-8")
    return path
