"""Confidence that means something: temperature scaling fitted on the validation split, expected calibration
error (ECE) and the reliability diagram.

Calibration is measured on words: a word's confidence is its highest posterior (`Head.word_posteriors`:
softmax for the linear head, CRF marginals for the CRF head), correct when that label is the gold one.
One temperature T divides every logit (for the CRF also its start, end and transition scores) before the
posteriors; it is fitted by minimising the words' negative log-likelihood, so argmax decisions never change,
only the scores. Entity scores are the mean of their words' scores, so they move with them.

A trained model dir keeps the result in config.json's `nertune` section as `calibration = {"temperature",
"ece_before", "ece_after"}` (`model.settings.ModelSettings`); `NerPredictor` applies the temperature to the
scores it reports. The temperature is searched in `TEMPERATURE_RANGE`: its floor keeps a model that gets every
validation word right (the likelihood then always prefers a sharper T) from saturating every score to 1.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.optimize import minimize_scalar

from nertune.heads import Head
from nertune.inference.predictor import NerPredictor
from nertune.model.settings import settings_of

logger = logging.getLogger(__name__)

N_BINS = 15
TEMPERATURE_RANGE = (0.5, 20.0)  # searched on a log scale


def reliability_bins(confidences: np.ndarray, correct: np.ndarray, n_bins: int = N_BINS) -> list[dict[str, float]]:
    """Equal-width confidence bins over (0, 1]: `{"low", "high", "count", "confidence", "accuracy"}` each
    (mean confidence and accuracy of its words; 0 for an empty bin)."""
    confidences, correct = np.asarray(confidences, dtype=float), np.asarray(correct, dtype=float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.digitize(confidences, edges[1:-1], right=True), 0, n_bins - 1)
    bins = []
    for b in range(n_bins):
        members = index == b
        count = int(members.sum())
        bins.append(
            {
                "low": float(edges[b]),
                "high": float(edges[b + 1]),
                "count": count,
                "confidence": float(confidences[members].mean()) if count else 0.0,
                "accuracy": float(correct[members].mean()) if count else 0.0,
            }
        )
    return bins


def expected_calibration_error(confidences: np.ndarray, correct: np.ndarray, n_bins: int = N_BINS) -> float:
    """ECE: the count-weighted mean |accuracy - confidence| over equal-width bins (0 for no words)."""
    bins = reliability_bins(confidences, correct, n_bins)
    total = sum(b["count"] for b in bins)
    if total == 0:
        return 0.0
    return float(sum(b["count"] * abs(b["accuracy"] - b["confidence"]) for b in bins) / total)


def word_posteriors_with_gold(
    head: Head, word_logits: Sequence[torch.Tensor], gold_ids: Sequence[Sequence[int]]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(posteriors (N, L), gold ids (N,)) of every word with a known gold label (gold id >= 0), all sentences,
    at the head's temperature (a CRF head bound to its model: `Head.bind`)."""
    posteriors = head.word_posteriors(word_logits)
    rows, golds = [], []
    for sentence, ids in zip(posteriors, gold_ids):
        ids = torch.as_tensor(list(ids), dtype=torch.long)
        known = ids >= 0
        rows.append(sentence[known])
        golds.append(ids[known])
    n_labels = posteriors[0].shape[-1] if posteriors else 0
    return (torch.cat(rows) if rows else torch.zeros((0, n_labels))), (
        torch.cat(golds) if golds else torch.zeros(0, dtype=torch.long)
    )


def confidence_and_correct(posteriors: torch.Tensor, gold: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    confidence, predicted = posteriors.max(dim=-1)
    return confidence.numpy(), (predicted == gold).numpy()


def fit_temperature(head: Head, word_logits: Sequence[torch.Tensor], gold_ids: Sequence[Sequence[int]]) -> float:
    """The temperature minimising the words' negative log-likelihood of their gold labels (1.0 for no words).
    `head.temperature` is left as it was."""
    before = head.temperature

    def nll(log_temperature: float) -> float:
        head.temperature = float(np.exp(log_temperature))
        posteriors, gold = word_posteriors_with_gold(head, word_logits, gold_ids)
        picked = posteriors.gather(1, gold[:, None]).squeeze(1)
        return float(-picked.clamp(min=1e-12).log().mean())

    try:
        if sum(int((torch.as_tensor(list(ids)) >= 0).sum()) for ids in gold_ids) == 0:
            return 1.0
        low, high = np.log(TEMPERATURE_RANGE[0]), np.log(TEMPERATURE_RANGE[1])
        found = minimize_scalar(nll, bounds=(low, high), method="bounded", options={"xatol": 1e-3})
        return float(np.exp(found.x))
    finally:
        head.temperature = before


def gold_label_ids(gold_tags: Sequence[Sequence[str]], labels: Sequence[str]) -> list[list[int]]:
    """Gold tags as the model's label ids; -1 for a tag the model does not know (left out of calibration)."""
    index = {label: i for i, label in enumerate(labels)}
    return [[index.get(tag, -1) for tag in tags] for tags in gold_tags]


def calibration_report(
    predictor: NerPredictor,
    sentences: Sequence[Sequence[str]],
    gold_tags: Sequence[Sequence[str]],
    document_ids: Sequence[str | None] | None = None,
) -> dict[str, Any]:
    """ECE and reliability bins of the predictor's scores (at its head's temperature) on gold-tagged sentences:
    `{"ece", "n_words", "bins"}`."""
    logits = predictor.word_logits(sentences, document_ids)
    posteriors, gold = word_posteriors_with_gold(predictor.head, logits, gold_label_ids(gold_tags, predictor.labels))
    confidence, correct = confidence_and_correct(posteriors, gold)
    return {
        "ece": expected_calibration_error(confidence, correct),
        "n_words": len(confidence),
        "bins": reliability_bins(confidence, correct),
    }


def calibrate(
    predictor: NerPredictor,
    sentences: Sequence[Sequence[str]],
    gold_tags: Sequence[Sequence[str]],
    document_ids: Sequence[str | None] | None = None,
) -> dict[str, float]:
    """Fit the temperature of the predictor's model on gold-tagged (validation) sentences:
    `{"temperature", "ece_before", "ece_after"}`. The predictor's head takes the temperature."""
    logits = predictor.word_logits(sentences, document_ids)
    gold_ids = gold_label_ids(gold_tags, predictor.labels)
    head = predictor.head
    head.temperature = None
    ece_before = expected_calibration_error(*confidence_and_correct(*word_posteriors_with_gold(head, logits, gold_ids)))
    head.temperature = fit_temperature(head, logits, gold_ids)
    ece_after = expected_calibration_error(*confidence_and_correct(*word_posteriors_with_gold(head, logits, gold_ids)))
    result = {"temperature": round(head.temperature, 6), "ece_before": ece_before, "ece_after": ece_after}
    logger.info(
        "calibration on %d sentences: temperature %.3f, ECE %.4f -> %.4f",
        len(sentences),
        head.temperature,
        ece_before,
        ece_after,
    )
    return result


def calibrate_trained_model(model: torch.nn.Module, tokenizer, recipe, validation) -> dict:
    """Fit the temperature of a just-trained model on its validation split (a dataset of `tokens`,
    `ner_tags` in the training scheme, `document_id`) and store it in the `nertune` section (`calibration`)
    of the config.json in the recipe's `output_dir`."""
    output_dir = Path(recipe.output_dir)
    predictor = NerPredictor(
        model,
        tokenizer,
        scheme=recipe.data.train_scheme,
        max_length=recipe.max_length,
        window_overlap=recipe.window_overlap,
        context_size=recipe.context_size,
        batch_size=recipe.per_device_eval_batch_size,
        name=output_dir.name,
    )
    documents = validation["document_id"] if "document_id" in validation.column_names else None
    result = calibrate(predictor, validation["tokens"], validation["ner_tags"], documents)
    settings = settings_of(model.config)
    settings.calibration = result
    settings.write_to(model.config)
    model.config.save_pretrained(str(output_dir))
    return result
