"""Word-level prediction with a Trainer, scoring a split, and evaluating a saved model directory."""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import numpy as np
import torch
from transformers import Trainer

from .align import IGNORE_INDEX, merge_window_predictions
from .errors import ModelError
from .metrics import entity_metrics, format_entity_report, token_report
from .schemes import repair_tags
from .trainer import NerTrainer, model_crf

logger = logging.getLogger(__name__)


def word_ids_from_emissions(features, emissions, n_words: list[int], crf) -> list[list[int]]:
    """head=crf: each word's emission vector (windows merged) -> constrained Viterbi over the whole sentence."""
    from .crf import decode_words

    return decode_words(crf, word_predictions_from_rows(features, emissions, n_words))


def compact_logits(logits, labels):
    """Keep label ids (and, given labels, each sub-token's loss) during evaluation: full logits of a large
    split would not fit in memory.

    The per-sub-token loss makes the evaluation loss the token mean over the whole split. Gathered row by
    row, it stays exact on N processes, where the Trainer's per-batch means would also count the rows that
    accelerate repeats to even out the last batch.
    """
    if isinstance(logits, tuple):
        logits = logits[0]
    predictions = logits.argmax(dim=-1)
    if labels is None:
        return predictions
    token_loss = torch.nn.functional.cross_entropy(logits.float().transpose(1, 2), labels.clamp(min=0),
                                                   reduction="none")
    return predictions, token_loss


def word_predictions_from_rows(features, row_predictions, n_words: list[int]) -> list[list[int]]:
    """Per-window sub-token label ids (padded with anything) -> exactly one label id per word."""
    return merge_window_predictions(
        features["word_index"], features["example_index"], features["word_start"], features["word_end"],
        row_predictions, n_words,
    )


def ids_to_tags(word_ids: list[list[int]], id2label: dict[int, str], scheme: str) -> list[list[str]]:
    # Repair makes every written sequence valid; it keeps the spans seqeval's default mode would read.
    return [repair_tags([id2label[int(i)] for i in sentence], scheme) for sentence in word_ids]


def make_compute_metrics(features, gold_tags: list[list[str]], id2label: dict[int, str], scheme: str, strict: bool,
                         crf=None):
    """`compute_metrics` for the Trainer: entity-level scores on every word of the validation split.

    `crf` (head=crf; the CRF, or a function returning it when the model is built later): predictions are
    emission scores (`crf.emission_logits`) decoded by Viterbi; the evaluation loss is the CRF's negative
    log-likelihood per labelled word over the whole split (the training loss of `NerTrainer.compute_loss`).
    """
    n_words = [len(t) for t in gold_tags]

    def compute_metrics(eval_prediction) -> dict[str, float]:
        head = crf() if callable(crf) and not isinstance(crf, torch.nn.Module) else crf
        if head is not None:
            word_ids = word_ids_from_emissions(features, eval_prediction.predictions, n_words, head)
            scores = entity_metrics(gold_tags, ids_to_tags(word_ids, id2label, scheme), scheme=scheme, strict=strict)
            metrics = {key: scores[key] for key in ("precision", "recall", "f1", "macro_f1", "accuracy")}
            # The CRF loss per labelled word over the whole split, row by row: exact on N processes too.
            if eval_prediction.label_ids is None:
                return metrics
            labels = torch.as_tensor(eval_prediction.label_ids)
            device = head.transitions.device
            with torch.no_grad():
                nll = float(head.neg_log_likelihood(torch.as_tensor(eval_prediction.predictions).to(device),
                                                    labels.to(device)))
            metrics["token_loss"] = nll / max(int(labels.ne(IGNORE_INDEX).sum()), 1)
            return metrics
        predictions, token_loss = eval_prediction.predictions  # from compact_logits
        word_ids = word_predictions_from_rows(features, predictions, n_words)
        scores = entity_metrics(gold_tags, ids_to_tags(word_ids, id2label, scheme), scheme=scheme, strict=strict)
        labelled = eval_prediction.label_ids != IGNORE_INDEX
        return {"precision": scores["precision"], "recall": scores["recall"], "f1": scores["f1"],
                "macro_f1": scores["macro_f1"], "accuracy": scores["accuracy"],
                "token_loss": float(token_loss[labelled].mean()) if labelled.any() else 0.0}

    return compute_metrics


def predict_split(trainer: Trainer, features, n_words: list[int], id2label: dict[int, str], scheme: str) -> list[list[str]]:
    """Predict one tag per word for every sentence of an encoded split."""
    # compute_metrics is bound to the validation split; predicting any other split must not call it.
    compute_metrics, trainer.compute_metrics = trainer.compute_metrics, None
    try:
        output = trainer.predict(features, metric_key_prefix="predict")
    finally:
        trainer.compute_metrics = compute_metrics
    predictions = output.predictions
    if isinstance(predictions, tuple):  # (label ids, sub-token losses) from compact_logits
        predictions = predictions[0]
    crf = model_crf(trainer.model)
    if crf is not None:  # head=crf: emission scores (crf.emission_logits), Viterbi over each whole sentence
        word_ids = word_ids_from_emissions(features, predictions, n_words, crf)
    else:
        if isinstance(predictions, np.ndarray) and predictions.ndim == 3:  # logits, when no argmax preprocessing
            predictions = predictions.argmax(-1)
        word_ids = word_predictions_from_rows(features, predictions, n_words)
    tags = ids_to_tags(word_ids, id2label, scheme)
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
    """Score a trained model dir (full model or LoRA adapter) on any split/file; write `MODEL_DIR/eval/<name>/`.

    Settings come from the run's saved `config.yaml` (so by default the test split it held out),
    overridden by `key=value` pairs: any recipe key (`data.test_file=other.conll`, `strict_metrics=true`,
    `data.label_map=PERSON:PER,LOCATION:LOC` to rename the data's entity types to the model's, `:O` to drop
    one), plus `split=validation|test|train`, `name=<output folder>`, `bootstrap=<resamples>` (1000; 0: no
    confidence interval) and `bootstrap_seed=<seed>` (0).

    Writes `metrics.json` (scores of the recipe's mode at the top level, `default`/`strict` per type,
    `f1_ci95`), `report.txt`, `errors.json` (`report.error_analysis`), `predictions.conll` and, with
    matplotlib, `confusion_matrix.png` and `learning_curves.png` (from the run's `trainer_state.json`).
    """
    from transformers import DataCollatorForTokenClassification, TrainingArguments

    from . import report as reports
    from .align import encode_split
    from .config import load_recipe
    from .crf import emission_logits
    from .data import DataError, load_split
    from .modeling import load_for_inference, load_tokenizer, resolve_model_path, trained_labels

    model_dir = Path(resolve_model_path(str(model_dir)))
    extra = dict(item.split("=", 1) for item in overrides or [] if item.split("=", 1)[0] in EVAL_KEYS)
    recipe_overrides = [item for item in overrides or [] if item.split("=", 1)[0] not in EVAL_KEYS]
    n_bootstrap, seed = _int_option(extra, "bootstrap", 1000), _int_option(extra, "bootstrap_seed", 0)
    recipe_file = model_dir / "config.yaml"
    recipe = load_recipe(recipe_file if recipe_file.is_file() else None,
                         [f"model_name_or_path={model_dir}", *recipe_overrides])
    split = extra.get("split", "test")
    dataset, source_scheme = load_split(recipe.data, split)  # data.label_map already applied
    scheme = recipe.data.train_scheme

    model = load_for_inference(str(model_dir))  # a full model dir or a LoRA adapter dir
    labels = trained_labels(model.config)
    if labels is None:
        raise ModelError(f"{model_dir}: config.json has no label names (id2label); is this a fine-tuned model?")
    unknown = sorted({t for tags in dataset["ner_tags"] for t in tags} - set(labels))
    if unknown and recipe.data.unseen_label_policy == "error":
        raise DataError(f"split {split!r} has labels the model does not know: {unknown} (model labels: {labels}); "
                        "rename them with data.label_map=THEIRS:OURS,... (THEIRS:O drops a type), "
                        "or set data.unseen_label_policy=O to score them as O")
    gold = [[t if t in labels else "O" for t in tags] for tags in dataset["ner_tags"]]
    tokenizer = load_tokenizer(str(model_dir))
    features = encode_split(dataset, tokenizer, recipe.max_length, recipe.window_overlap, sort_by_length=True,
                            context_size=recipe.context_size)
    name = extra.get("name") or _default_eval_name(recipe, split)
    out_dir = model_dir / "eval" / name
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:  # the Trainer wants an output_dir; prediction writes nothing
        trainer = NerTrainer(
            model=model,
            args=TrainingArguments(output_dir=scratch, per_device_eval_batch_size=recipe.per_device_eval_batch_size,
                                   report_to="none", use_cpu=not torch.cuda.is_available()),
            data_collator=DataCollatorForTokenClassification(tokenizer),
            processing_class=tokenizer,
            preprocess_logits_for_metrics=compact_logits if model_crf(model) is None else emission_logits,
        )
        predicted = predict_split(trainer, features, [len(t) for t in gold], model.config.id2label, scheme)

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
        scores.update({"f1_ci95": ci["ci"], "bootstrap": {"n_resamples": ci["n_resamples"], "seed": ci["seed"],
                                                          "unit": "sentence"}})
    analysis = reports.error_analysis(gold, predicted, scheme, words=dataset["tokens"])
    scores.update({"split": split, "source_scheme": source_scheme, "n_words_in_input": sum(map(len, gold)),
                   "n_words_predicted": sum(map(len, predicted)), "label_map": recipe.data.label_map,
                   "error_counts": analysis["counts"]})

    ci_line = (f"micro F1 ({mode}) {scores['f1']:.4f}, 95% CI [{scores['f1_ci95'][0]:.4f}, {scores['f1_ci95'][1]:.4f}] "
               f"({n_bootstrap} sentence bootstrap resamples, seed {seed})\n" if "f1_ci95" in scores else "")
    report = (f"== {name}: entity level ({' and '.join(by_mode)} mode) ==\n"
              f"{reports.format_mode_table(by_mode['default'], by_mode.get('strict'))}{ci_line}"
              f"== {name}: token level ==\n{token_report(gold, predicted)}"
              f"== {name}: errors (gold entities by kind; see errors.json) ==\n"
              f"{reports.format_error_summary(analysis)}")
    write_json(out_dir / "metrics.json", scores)
    write_json(out_dir / "errors.json", analysis)
    (out_dir / "report.txt").write_text(report, encoding="utf-8")
    write_conll_predictions(out_dir / "predictions.conll", dataset, gold, predicted)
    reports.plot_confusion_matrix(analysis["confusion_matrix"], out_dir / "confusion_matrix.png",
                                  title=f"{name}: entity types, gold vs predicted")
    reports.plot_learning_curves(model_dir / "trainer_state.json", out_dir / "learning_curves.png")
    print(report)
    print(f"{name}: entity F1 {scores['f1']:.4f} on {len(gold)} sentences -> {out_dir}")
    return scores


def _int_option(extra: dict[str, str], key: str, default: int) -> int:
    from .config import RecipeError

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
