"""Word-level prediction with a Trainer: the validation metrics during training, and every split's tags after
it (and the starting model's when continuing). `nertune evaluate` predicts through `NerPredictor` instead."""

from __future__ import annotations

from collections.abc import Callable

import torch

from nertune.data.align import merge_window_predictions
from nertune.evaluation.metrics import entity_metrics
from nertune.heads import Head
from nertune.schemes import repair_tags
from nertune.training.trainer import NerTrainer


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
        word_label_ids = head.bind(current).decode_word_label_ids(word_predictions_from_rows(features, rows, n_words))
        scores = entity_metrics(gold_tags, ids_to_tags(word_label_ids, id2label, scheme), scheme=scheme, strict=strict)
        metrics = {key: scores[key] for key in ("precision", "recall", "f1", "macro_f1", "accuracy")}
        if eval_prediction.label_ids is not None:
            metrics["token_loss"] = head.eval_loss(eval_prediction.predictions, eval_prediction.label_ids)
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
    word_label_ids = trainer.head.bind(trainer.model).decode_word_label_ids(
        word_predictions_from_rows(features, rows, n_words)
    )
    tags = ids_to_tags(word_label_ids, id2label, scheme)
    assert [len(t) for t in tags] == n_words, "every word of every sentence gets exactly one tag"
    return tags
