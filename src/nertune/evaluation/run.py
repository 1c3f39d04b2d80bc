"""Word-level prediction with a Trainer, scoring a split, and evaluating a saved model directory."""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from nertune.data.align import merge_window_predictions
from nertune.evaluation.metrics import entity_metrics, format_entity_report, token_report
from nertune.heads import Head
from nertune.schemes import repair_tags
from nertune.training.trainer import NerTrainer

logger = logging.getLogger(__name__)


def word_predictions_from_rows(features, row_predictions, n_words: list[int]) -> list[list[int]]:
    """Per-window sub-token label ids (padded with anything) -> exactly one label id per word."""
    return merge_window_predictions(
        features["word_index"],
        features["example_index"],
        features["word_start"],
        features["word_end"],
        row_predictions,
        n_words,
    )


def ids_to_tags(word_label_ids: list[list[int]], id2label: dict[int, str], scheme: str) -> list[list[str]]:
    # Repair makes every written sequence valid; it keeps the spans seqeval's default mode would read.
    return [repair_tags([id2label[int(i)] for i in sentence], scheme) for sentence in word_label_ids]


def make_compute_metrics(
    features,
    gold_tags: list[list[str]],
    id2label: dict[int, str],
    scheme: str,
    strict: bool,
    head: Head,
    model: Callable[[], torch.nn.Module],
):
    """`compute_metrics` for the Trainer: entity-level scores on every word of the validation split, and the
    head's loss per labelled sub-token over the whole split (`token_loss`, `NerTrainer`'s evaluation loss).

    `model` returns the model being evaluated (built later under `model_init`); a head may decode with it.
    """
    n_words = [len(t) for t in gold_tags]

    def compute_metrics(eval_prediction) -> dict[str, float]:
        current = model()
        rows = head.eval_row_outputs(eval_prediction.predictions)
        word_label_ids = head.decode_word_label_ids(current, word_predictions_from_rows(features, rows, n_words))
        scores = entity_metrics(gold_tags, ids_to_tags(word_label_ids, id2label, scheme), scheme=scheme, strict=strict)
        metrics = {key: scores[key] for key in ("precision", "recall", "f1", "macro_f1", "accuracy")}
        if eval_prediction.label_ids is not None:
            metrics["token_loss"] = head.eval_loss(current, eval_prediction.predictions, eval_prediction.label_ids)
        return metrics

    return compute_metrics


def predict_split(
    trainer: NerTrainer, features, n_words: list[int], id2label: dict[int, str], scheme: str
) -> list[list[str]]:
    """Predict one tag per word for every sentence of an encoded split."""
    # compute_metrics is bound to the validation split; predicting any other split must not call it.
    compute_metrics, trainer.compute_metrics = trainer.compute_metrics, None
    try:
        output = trainer.predict(features, metric_key_prefix="predict")
    finally:
        trainer.compute_metrics = compute_metrics
    rows = trainer.head.eval_row_outputs(output.predictions)
    word_label_ids = trainer.head.decode_word_label_ids(
        trainer.model, word_predictions_from_rows(features, rows, n_words)
    )
    tags = ids_to_tags(word_label_ids, id2label, scheme)
    assert [len(t) for t in tags] == n_words, "every word of every sentence gets exactly one tag"
    return tags


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


EVAL_KEYS = ("split", "name", "bootstrap", "bootstrap_seed")  # evaluate-only keys; everything else is a recipe key


def run_evaluation(model_dir: str | Path, overrides: list[str] | None = None) -> dict:
    """Score a trained model dir (full model or LoRA adapter) on any split/file; write `MODEL_DIR/eval/<name>/`
    (for a Hub id: `runs/eval/<owner>__<name>/<name>/`).

    Settings come from the run's saved recipe (`recipe.yaml`; `config.yaml` in older run dirs; so by default
    the test split it held out),
    overridden by `key=value` pairs: any recipe key (`data.test_file=other.conll`, `strict_metrics=true`,
    `data.label_map=PERSON:PER,LOCATION:LOC` to rename the data's entity types to the model's, `:O` to drop
    one), plus `split=validation|test|train`, `name=<output folder>`, `bootstrap=<resamples>` (1000; 0: no
    confidence interval) and `bootstrap_seed=<seed>` (0).

    Writes `metrics.json` (scores of the recipe's mode at the top level, `default`/`strict` per type,
    `f1_ci95`, `ece` and `reliability_png`: see `calibration`), `report.txt`, `errors.json`
    (`report.error_analysis`), `predictions.conll` and, with matplotlib, `confusion_matrix.png`,
    `reliability.png` and `learning_curves.png` (from the run's `trainer_state.json`).
    """
    from transformers import DataCollatorForTokenClassification, TrainingArguments

    from nertune.data import DataError, load_split
    from nertune.data.align import encode_split
    from nertune.evaluation import report as reports
    from nertune.model.references import resolve_model_path
    from nertune.model.rundir import RunDir

    reference = resolve_model_path(str(model_dir))  # a local dir, or a Hub id resolved through the HF cache
    run = RunDir.load(reference)  # a full model dir or a LoRA adapter dir
    # Results go beside a local model; never into the Hugging Face cache.
    results_root = (
        run.path / "eval" if Path(reference).exists() else Path("runs") / "eval" / reference.replace("/", "__")
    )
    extra = dict(item.split("=", 1) for item in overrides or [] if item.split("=", 1)[0] in EVAL_KEYS)
    recipe_overrides = [item for item in overrides or [] if item.split("=", 1)[0] not in EVAL_KEYS]
    n_bootstrap, seed = _int_option(extra, "bootstrap", 1000), _int_option(extra, "bootstrap_seed", 0)
    recipe = run.recipe_with(recipe_overrides)
    split = extra.get("split", "test")
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
    tokenizer = run.load_tokenizer()
    features = encode_split(
        dataset,
        tokenizer,
        recipe.max_length,
        recipe.window_overlap,
        sort_by_length=True,
        context_size=recipe.context_size,
    )
    name = extra.get("name") or _default_eval_name(recipe, split)
    out_dir = results_root / name
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:  # the Trainer wants an output_dir; prediction writes nothing
        trainer = NerTrainer(
            model=run.load_model(),
            args=TrainingArguments(
                output_dir=scratch,
                per_device_eval_batch_size=recipe.per_device_eval_batch_size,
                report_to="none",
                use_cpu=not torch.cuda.is_available(),
            ),
            data_collator=DataCollatorForTokenClassification(tokenizer),
            processing_class=tokenizer,
        )  # the head comes from the model's config.json; it decides what evaluation keeps of the logits
        predicted = predict_split(trainer, features, [len(t) for t in gold], run.id2label, scheme)

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
    analysis = reports.error_analysis(gold, predicted, scheme, words=dataset["tokens"])
    scores.update(_calibration_outputs(run.path, dataset, gold, recipe, out_dir, name))
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
    report = (
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
    print(report)
    print(f"{name}: entity F1 {scores['f1']:.4f} on {len(gold)} sentences -> {out_dir}")
    return scores


def _calibration_outputs(model_dir: Path, dataset, gold: list[list[str]], recipe, out_dir: Path, name: str) -> dict:
    """`ece` of the scores the model reports (word level, see `calibration`) and the reliability diagram's path."""
    from nertune.evaluation import calibration
    from nertune.inference.predictor import NerPredictor

    predictor = NerPredictor.from_pretrained(model_dir, batch_size=recipe.per_device_eval_batch_size)
    documents = dataset["document_id"] if "document_id" in dataset.column_names else None
    found = calibration.calibration_report(predictor, dataset["tokens"], gold, documents)
    title = f"{name}: reliability (ECE {found['ece']:.3f})"
    png = calibration.plot_reliability(found["bins"], out_dir / "reliability.png", title=title)
    return {"ece": found["ece"], **({"reliability_png": str(png)} if png is not None else {})}


def _int_option(extra: dict[str, str], key: str, default: int) -> int:
    from nertune.recipe.schema import RecipeError

    value = extra.get(key)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise RecipeError(f"evaluate option {key!r}: expected a non-negative integer, got {value!r}") from None
    if number < 0:
        raise RecipeError(f"evaluate option {key!r}: expected a non-negative integer, got {value!r}")
    return number


def _default_eval_name(recipe, split: str) -> str:
    file = getattr(recipe.data, f"{split}_file")
    if file:
        return f"{Path(file).stem}"
    source = recipe.data.dataset_name or Path(recipe.data.train_file or "data").stem
    return f"{source.replace('/', '__')}-{split}"
