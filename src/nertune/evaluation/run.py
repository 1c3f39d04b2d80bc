"""Scoring a split, and evaluating a saved model directory (predicted through `NerPredictor`)."""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nertune.evaluation.metrics import entity_metrics, format_entity_report, gold_spans, span_metrics, token_report
from nertune.recipe.schema import RecipeError, apply_overrides, override_values

logger = logging.getLogger(__name__)


def score_split(gold: list[list[str]], predicted: list[list[str]], scheme: str, strict: bool) -> dict:
    scores = entity_metrics(gold, predicted, scheme=scheme, strict=strict)
    scores["entity_report"] = format_entity_report(scores)
    scores["token_report"] = token_report(gold, predicted)
    return scores


def write_conll_predictions(path: str | Path, dataset, gold: list[list[str]], predicted: list[list[str]]) -> None:
    """Word-level predictions: `token gold predicted`, a blank line between sentences, documents marked."""
    document = None
    with open(path, "w", encoding="utf-8") as f:
        for i, (words, g, p) in enumerate(zip(dataset["tokens"], gold, predicted)):
            doc = dataset["document_id"][i] if "document_id" in dataset.column_names else ""
            if doc and doc != document:
                f.write("-DOCSTART-\tO\tO\n\n")
            document = doc
            for w, gt, pt in zip(words, g, p):
                f.write(f"{w}\t{gt}\t{pt}\n")
            f.write("\n")


def write_json(path: str | Path, payload: dict) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=2, ensure_ascii=False)
        f.write("\n")


# Options of evaluate that were once `key=value` items among the recipe overrides; read there (with a warning)
# for one more release.
LEGACY_OPTIONS = ("split", "name", "bootstrap", "bootstrap_seed")


def run_evaluation(
    model_dir: str | Path,
    overrides: Sequence[str] | Mapping[str, Any] | None = None,
    *,
    split: str = "test",
    name: str | None = None,
    bootstrap: int = 1000,
    bootstrap_seed: int = 0,
) -> dict:
    """Score a trained model dir (full model or LoRA adapter) on any split/file; write `MODEL_DIR/eval/<name>/`
    (for a Hub id: `runs/eval/<owner>__<name>/<name>/`).

    Settings come from the run's saved recipe (`recipe.yaml`; so by default the test split it held out),
    overridden by `overrides` (`key=value` strings or a mapping of dotted keys) of recipe keys
    (`data.test_file=other.conll`, `strict_metrics=true`,
    `data.label_map=PERSON:PER,LOCATION:LOC` to rename the data's entity types to the model's, `:O` to drop
    one). `split`: validation|test|train; `name`: the output folder; `bootstrap`: resamples of the confidence
    interval (0: none), drawn with `bootstrap_seed`.

    Predicts through `NerPredictor.predict` on the split's token lists with their document ids, in fp32 (the
    scores then match the ones the training run reported).

    Writes `metrics.json` (scores of the recipe's mode at the top level, `default`/`strict` per type,
    `f1_ci95`, `ece` and `reliability_png`: see `calibration`), `report.txt`, `errors.json`
    (`report.error_analysis`), `predictions.conll`, `report.html` and, with matplotlib, `confusion_matrix.png`,
    `reliability.png` and `learning_curves.png` (from the run's `trainer_state.json`).
    """
    from nertune.data import DataError, load_split
    from nertune.evaluation import html_report
    from nertune.evaluation import report as reports
    from nertune.inference.predictor import NerPredictor
    from nertune.model.references import resolve_model_path
    from nertune.model.rundir import RunDir

    recipe_overrides, legacy = _legacy_options(overrides)
    split = str(legacy.get("split", split))
    name = None if legacy.get("name", name) is None else str(legacy.get("name", name))
    n_bootstrap = _count_option("bootstrap", legacy.get("bootstrap", bootstrap))
    seed = _count_option("bootstrap_seed", legacy.get("bootstrap_seed", bootstrap_seed))
    if split not in ("train", "validation", "test"):
        raise RecipeError(f"evaluate option 'split' must be train, validation or test, got {split!r}")
    reference = resolve_model_path(str(model_dir))  # a local dir, or a Hub id resolved through the HF cache
    run = RunDir.load(reference)  # a full model dir or a LoRA adapter dir
    # Results go beside a local model; never into the Hugging Face cache.
    results_root = (
        run.path / "eval" if Path(reference).exists() else Path("runs") / "eval" / reference.replace("/", "__")
    )
    recipe = apply_overrides(run.recipe_with(), recipe_overrides) if recipe_overrides else run.recipe_with()
    dataset, source_scheme = load_split(recipe.data, split)  # data.label_map already applied
    scheme = recipe.data.train_scheme

    labels = run.labels
    unknown = sorted({t for tags in dataset["ner_tags"] for t in tags} - set(labels))
    if unknown and recipe.data.unseen_label_policy == "error":
        raise DataError(
            f"split {split!r} has labels the model does not know: {unknown} (model labels: {labels}); "
            "rename them with data.label_map=THEIRS:OURS,... (THEIRS:O drops a type), "
            "or set data.unseen_label_policy=O to score them as O"
        )
    gold = [[t if t in labels else "O" for t in tags] for tags in dataset["ner_tags"]]
    name = name or _default_eval_name(recipe, split)
    out_dir = results_root / name
    out_dir.mkdir(parents=True, exist_ok=True)
    # The recipe's windows and context (overridable), the model's head and scheme.
    run.settings.max_length, run.settings.window_overlap = recipe.max_length, recipe.window_overlap
    run.settings.context_size, run.settings.scheme = recipe.context_size, scheme
    predictor = NerPredictor.from_pretrained(run, batch_size=recipe.per_device_eval_batch_size, precision="fp32")
    documents = dataset["document_id"] if "document_id" in dataset.column_names else None
    results = predictor.predict([list(words) for words in dataset["tokens"]], documents)
    predicted = [result["tags"] for result in results]

    # Scores of both modes (strict only where the scheme has one); the recipe's mode is the headline.
    by_mode = {"default": entity_metrics(gold, predicted, scheme=scheme, strict=False)}
    if scheme in ("IOB2", "BIOES", "BILOU"):
        by_mode["strict"] = entity_metrics(gold, predicted, scheme=scheme, strict=True)
    mode = "strict" if recipe.strict_metrics else "default"
    scores = dict(by_mode[mode])
    scores["mode"] = mode
    for key, value in by_mode.items():
        scores[key] = {k: value[k] for k in ("precision", "recall", "f1", "macro_f1", "accuracy", "per_type")}
    if n_bootstrap > 0:
        ci = reports.bootstrap_f1_ci(gold, predicted, scheme, n=n_bootstrap, seed=seed, strict=mode == "strict")
        scores.update(
            {
                "f1_ci95": ci["ci"],
                "bootstrap": {"n_resamples": ci["n_resamples"], "seed": ci["seed"], "unit": "sentence"},
            }
        )
    span_report = ""
    if predictor.head.nested_entities or "spans" in dataset.column_names:
        # Entities of every level, scored as exact span sets; the tags' (outer level's) scores stay beside them.
        found = [[(e["type"], e["start"], e["end"]) for e in result["entities"]] for result in results]
        spans = span_metrics(gold_spans(dataset, scheme), found)
        scores["outer_level"] = {k: scores[k] for k in ("precision", "recall", "f1", "macro_f1", "per_type")}
        scores.update(spans, mode="spans")
        if "f1_ci95" in scores:  # resampled over the tags: the outer level's interval
            scores["outer_level"]["f1_ci95"] = scores.pop("f1_ci95")
        span_report = f"== {name}: entity level, every level (exact spans) ==\n{format_entity_report(scores)}"
    analysis = reports.error_analysis(gold, predicted, scheme, words=dataset["tokens"])
    scores.update(_calibration_outputs(predictor, dataset["tokens"], gold, documents, out_dir / "reliability.png"))
    scores.update(
        {
            "split": split,
            "source_scheme": source_scheme,
            "n_words_in_input": sum(map(len, gold)),
            "n_words_predicted": sum(map(len, predicted)),
            "label_map": recipe.data.label_map,
            "error_counts": analysis["counts"],
        }
    )

    ci_line = (
        f"micro F1 ({mode}) {scores['f1']:.4f}, 95% CI [{scores['f1_ci95'][0]:.4f}, {scores['f1_ci95'][1]:.4f}] "
        f"({n_bootstrap} sentence bootstrap resamples, seed {seed})\n"
        if "f1_ci95" in scores
        else ""
    )
    report = span_report + (
        f"== {name}: entity level ({' and '.join(by_mode)} mode) ==\n"
        f"{reports.format_mode_table(by_mode['default'], by_mode.get('strict'))}{ci_line}"
        f"== {name}: token level ==\n{token_report(gold, predicted)}"
        f"== {name}: errors (gold entities by kind; see errors.json) ==\n"
        f"{reports.format_error_summary(analysis)}"
    )
    write_json(out_dir / "metrics.json", scores)
    write_json(out_dir / "errors.json", analysis)
    (out_dir / "report.txt").write_text(report, encoding="utf-8")
    write_conll_predictions(out_dir / "predictions.conll", dataset, gold, predicted)
    reports.plot_confusion_matrix(
        analysis["confusion_matrix"], out_dir / "confusion_matrix.png", title=f"{name}: entity types, gold vs predicted"
    )
    reports.plot_learning_curves(run.path / "trainer_state.json", out_dir / "learning_curves.png")
    html_report.write_html_report(
        out_dir / "report.html", name, scores, analysis, gold, predicted, dataset["tokens"], scheme, n_bootstrap, seed
    )
    print(report)
    print(f"{name}: entity F1 {scores['f1']:.4f} on {len(gold)} sentences -> {out_dir}")
    return scores


def _legacy_options(overrides: Sequence[str] | Mapping[str, Any] | None) -> tuple[Any, dict[str, Any]]:
    """(the recipe overrides, the evaluate options found among them), warning for each option found."""
    if isinstance(overrides, Mapping):
        rest: Any = {key: value for key, value in overrides.items() if key not in LEGACY_OPTIONS}
        legacy = {key: overrides[key] for key in LEGACY_OPTIONS if key in overrides}
    else:
        rest = [item for item in overrides or [] if item.partition("=")[0].strip() not in LEGACY_OPTIONS]
        legacy = {k: v for k, v in override_values(list(overrides or [])).items() if k in LEGACY_OPTIONS}
    for key, value in legacy.items():
        warnings.warn(
            f"evaluate: {key}={value} among the recipe overrides is deprecated; use --{key.replace('_', '-')} "
            f"{value} (Python: {key}=...)",
            FutureWarning,
            stacklevel=3,
        )
    return rest, legacy


def _count_option(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RecipeError(f"evaluate option {key!r}: expected a non-negative integer, got {value!r}")
    return value


def _default_eval_name(recipe, split: str) -> str:
    file = getattr(recipe.data, f"{split}_file")
    if file:
        return f"{Path(file).stem}"
    source = recipe.data.dataset_name or Path(recipe.data.train_file or "data").stem
    return f"{source.replace('/', '__')}-{split}"


def _calibration_outputs(predictor, sentences, gold: list[list[str]], documents, out_png: Path) -> dict[str, Any]:
    """`ece` of the scores the model reports (word level, see `calibration`) and the reliability diagram's path."""
    from nertune.evaluation import calibration
    from nertune.evaluation.plots import plot_reliability

    found = calibration.calibration_report(predictor, sentences, gold, documents)
    title = f"{out_png.parent.name}: reliability (ECE {found['ece']:.3f})"
    png = plot_reliability(found["bins"], out_png, title=title)
    return {"ece": found["ece"], **({"reliability_png": str(png)} if png is not None else {})}
