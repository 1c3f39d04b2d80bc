"""The linear head (`head: linear`, the default): a softmax per sub-token, each word labelled at its first one.

The model is exactly what `AutoModelForTokenClassification` loads, so its run dirs work with `pipeline()`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from nertune.data.align import IGNORE_INDEX
from nertune.heads.base import Head


class LinearHead(Head):
    name = "linear"

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]).float(),
            labels.reshape(-1).to(logits.device),
            ignore_index=IGNORE_INDEX,
            reduction="sum",
        )

    def preprocess_logits_for_metrics(self, logits, labels):
        """Keep label ids (and, given labels, each sub-token's loss): full logits of a large split would not
        fit in memory.

        The per-sub-token loss makes the evaluation loss the token mean over the whole split. Gathered row by
        row, it stays exact on N processes, where the Trainer's per-batch means would also count the rows that
        accelerate repeats to even out the last batch.
        """
        if isinstance(logits, tuple):
            logits = logits[0]
        predictions = logits.argmax(dim=-1)
        if labels is None:
            return predictions
        token_loss = torch.nn.functional.cross_entropy(
            logits.float().transpose(1, 2), labels.clamp(min=0), reduction="none"
        )
        return predictions, token_loss

    def eval_row_outputs(self, predictions) -> Sequence:
        if isinstance(predictions, tuple):  # (label ids, sub-token losses)
            predictions = predictions[0]
        if (
            isinstance(predictions, np.ndarray) and predictions.ndim == 3
        ):  # logits, from a Trainer without preprocessing
            predictions = predictions.argmax(-1)
        return predictions

    def eval_loss(self, predictions, label_ids) -> float:
        _, token_loss = predictions
        labelled = label_ids != IGNORE_INDEX
        return float(token_loss[labelled].mean()) if labelled.any() else 0.0

    def row_outputs(self, logits: torch.Tensor) -> list[Sequence]:
        """(label id, probability) at every sub-token."""
        probabilities, label_ids = (logits / (self.temperature or 1.0)).softmax(dim=-1).max(dim=-1)
        return [list(zip(ids, probs)) for ids, probs in zip(label_ids.tolist(), probabilities.tolist())]

    def decode_words(self, word_outputs: Sequence[Sequence]) -> list[list[tuple[int, float]]]:
        return [[(int(label_id), float(score)) for label_id, score in sentence] for sentence in word_outputs]

    def decode_word_label_ids(self, word_outputs: Sequence[Sequence]) -> list[list[int]]:
        return [[int(label_id) for label_id in sentence] for sentence in word_outputs]
