"""Continued fine-tuning, measured: the starting (fine-tuned) model scored on the new test split before
training, and per-type F1 before and after, split into the types it knew (old) and the ones it learns (new)."""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from typing import Any

import torch
from transformers import DataCollatorForTokenClassification, TrainingArguments

from nertune.evaluation.metrics import entity_metrics
from nertune.model.loading import load_for_inference
from nertune.model.settings import head_of
from nertune.schemes import parse_tag
from nertune.training.predict import predict_split
from nertune.training.trainer import NerTrainer

# `data` below is `train.PreparedData` (train.py imports this module, so it is not imported back).
logger = logging.getLogger(__name__)


def entity_types(labels: Sequence[str]) -> list[str]:
    """The entity types of a label list, in first-seen order (O has none)."""
    types: list[str] = []
    for label in labels:
        type_ = parse_tag(label)[1]
        if type_ is not None and type_ not in types:
            types.append(type_)
    return types


def types_f1(
    gold: Sequence[Sequence[str]],
    predicted: Sequence[Sequence[str]],
    types: Sequence[str],
    scheme: str,
    strict: bool = False,
) -> float:
    """Micro entity F1 over `types` only: tags of every other type read as O on both sides."""
    keep = set(types)

    def only(tags: Sequence[str]) -> list[str]:
        return [tag if parse_tag(tag)[1] in keep else "O" for tag in tags]

    return entity_metrics([only(t) for t in gold], [only(t) for t in predicted], scheme=scheme, strict=strict)["f1"]


def evaluate_starting_model(args: TrainingArguments, data: Any, model_path: str) -> list[list[str]]:
    """The fine-tuned model training starts from, predicting the new test split (its own labels and head)."""
    model = load_for_inference(model_path)
    start_id2label = dict(enumerate(data.start_labels))
    # Its labels may be fewer than the new split's ids: predict from the words alone.
    features = data.eval_features["test"].remove_columns("labels")
    quiet_args = copy.copy(args)
    quiet_args.report_to = []  # a prediction, not a run: no logging integrations
    trainer = NerTrainer(
        model=model,
        args=quiet_args,
        head=head_of(model),
        processing_class=data.tokenizer,
        eval_dataset=features,  # unused, but the Trainer wants one whenever the run's eval_strategy is set
        data_collator=DataCollatorForTokenClassification(
            data.tokenizer, pad_to_multiple_of=8 if torch.cuda.is_available() else None
        ),
    )
    n_words = [len(t) for t in data.gold["test"]]
    predicted = predict_split(trainer, features, n_words, start_id2label, data.scheme)
    del trainer, model
    return predicted


def continued_run_metrics(
    start: str, data: Any, before: Sequence[Sequence[str]], after: Sequence[Sequence[str]], strict: bool
) -> dict[str, Any]:
    """`continued_from`, `old_types`, `new_types`, `test_per_type_before`, and F1 over the old types (and
    the new ones) on the test split, before and after training."""
    gold = data.gold["test"]
    old_types = entity_types(data.start_labels)
    new_types = [t for t in entity_types(data.labels) if t not in old_types]
    scores_before = entity_metrics(gold, before, scheme=data.scheme, strict=strict)
    metrics = {
        "continued_from": start,
        "old_types": old_types,
        "new_types": new_types,
        "test_f1_before": scores_before["f1"],
        "test_per_type_before": scores_before["per_type"],
        "old_types_f1_before": types_f1(gold, before, old_types, data.scheme, strict),
        "old_types_f1_after": types_f1(gold, after, old_types, data.scheme, strict),
    }
    if new_types:
        metrics["new_types_f1_after"] = types_f1(gold, after, new_types, data.scheme, strict)
    logger.info(
        "continued from %s: old types %s F1 %.4f -> %.4f; new types %s F1 %s",
        start,
        old_types,
        metrics["old_types_f1_before"],
        metrics["old_types_f1_after"],
        new_types,
        f"{metrics['new_types_f1_after']:.4f}" if new_types else "-",
    )
    return metrics
