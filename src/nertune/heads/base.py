"""The token-classification head interface: everything that depends on how a model turns its sub-token
logits into word labels.

A head sits on a plain HF token-classification model (whose `logits` it reads) and owns:

- `attach`: setting itself up on a freshly loaded model for training, marked in config.json
  (`nertune_head`), continuing the scores a model dir saved when it has any;
- `load`: its extra weights from a trained model dir (inference);
- `loss`: the training loss, summed over the labelled sub-tokens (`NerTrainer.compute_loss` divides);
- `preprocess_logits_for_metrics` / `eval_row_outputs` / `eval_loss`: what evaluation keeps of the logits,
  and the split-wide token-mean loss computed from it;
- `row_outputs` / `decode_words`: per-sub-token outputs of a forward pass, and the per-word (label id,
  score) decoded from them once windows are merged to one output per word;
- `param_groups`: extra optimizer parameter groups (its own learning rate);
- `extend_labels`: new labels appended to a fine-tuned model's, every old label's weights kept
  (`label_mismatch=extend`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from nertune.errors import ModelError
from nertune.schemes import normalize_scheme

if TYPE_CHECKING:
    from nertune.recipe.schema import Recipe


_CLASSIFIER_NAMES = ("classifier", "score")  # the output layer of HF token-classification models


def classifier_layer(model: torch.nn.Module) -> torch.nn.Linear:
    """The output layer of a token-classification model (`classifier`, or `score` for some architectures)."""
    model = unwrap_model(model)
    for name in _CLASSIFIER_NAMES:
        layer = getattr(model, name, None)
        if isinstance(layer, torch.nn.Linear):
            return layer
    raise ModelError(f"{type(model).__name__}: no linear output layer named {' or '.join(_CLASSIFIER_NAMES)}")


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside DDP/accelerate wrappers (`.module`), where a head keeps its own modules."""
    while hasattr(model, "module") and isinstance(model.module, torch.nn.Module):
        model = model.module
    return model


class Head:
    """A token-classification head; subclasses set `name` (the recipe's `head` value) and override what differs."""

    name: ClassVar[str]
    # Whether its weights sit in model.safetensors beside the HF model's: loading then reports them as unexpected.
    has_extra_weights: ClassVar[bool] = False
    # What the model card tells `pipeline()` users about this head ("" when pipeline() decodes it as nertune does).
    pipeline_note: ClassVar[str] = ""

    def __init__(self, scheme: str = "IOB2") -> None:
        self.scheme = normalize_scheme(scheme)
        # Calibration (config.json `nertune_calibration`): divides the logits behind scores, never decisions.
        self.temperature: float | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(scheme={self.scheme!r})"

    @classmethod
    def from_recipe(cls, recipe: Recipe, scheme: str) -> Head:
        """The head a training recipe asks for, training in `scheme`."""
        return cls(scheme)

    @classmethod
    def from_config(cls, config: Any) -> Head:
        """The head a trained model's config.json describes."""
        return cls()

    # -- the model

    def attach(self, model: torch.nn.Module, model_path: str | None = None) -> None:
        """Set the head up on a loaded token-classification model for training and mark config.json;
        `model_path`: a model dir whose saved head scores to continue from (None: a fresh head)."""
        model.config.nertune_head = self.name

    def extend_labels(self, model: torch.nn.Module, old_labels: Sequence[str], new_labels: Sequence[str]) -> None:
        """Grow an attached head from `old_labels` (the model's, in its order) to `new_labels` (`old_labels`
        followed by the new ones): every old label keeps its id and its weights exactly; new rows start as
        the model's initialiser would start a fresh head."""
        old_labels, new_labels = list(old_labels), list(new_labels)
        if new_labels[: len(old_labels)] != old_labels:
            raise ModelError(f"extending labels {old_labels}: the new list {new_labels} must start with them")
        layer = classifier_layer(model)
        if layer.out_features != len(old_labels):
            raise ModelError(f"the classifier has {layer.out_features} outputs, not one per label of {old_labels}")
        grown = torch.nn.Linear(
            layer.in_features,
            len(new_labels),
            bias=layer.bias is not None,
            device=layer.weight.device,
            dtype=layer.weight.dtype,
        )
        std = getattr(model.config, "initializer_range", 0.02)
        with torch.no_grad():
            grown.weight.normal_(0.0, std)
            grown.weight[: len(old_labels)] = layer.weight
            if layer.bias is not None:
                grown.bias.zero_()
                grown.bias[: len(old_labels)] = layer.bias
        inner = unwrap_model(model)
        for name in _CLASSIFIER_NAMES:
            if getattr(inner, name, None) is layer:
                setattr(inner, name, grown)
        config = model.config
        config.id2label = dict(enumerate(new_labels))
        config.label2id = {label: i for i, label in enumerate(new_labels)}
        config.num_labels = len(new_labels)

    def load(self, model: torch.nn.Module, model_path: str) -> None:
        """Load the head's own weights (beyond the HF model's) from a trained model dir; an error when missing."""

    def param_groups(self, model: torch.nn.Module) -> list[dict[str, Any]]:
        """Optimizer parameter groups of the head's own parameters ("params", "lr", ...); [] for none."""
        return []

    # -- training and evaluation

    def loss(self, model: torch.nn.Module, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The loss summed over the labelled sub-tokens (`labels != -100`) of the batch."""
        raise NotImplementedError

    def preprocess_logits_for_metrics(self, logits, labels):
        """What evaluation keeps of a batch's logits (the Trainer's `preprocess_logits_for_metrics`)."""
        raise NotImplementedError

    def eval_row_outputs(self, predictions) -> Sequence:
        """Per row, per sub-token outputs from what `preprocess_logits_for_metrics` kept (all batches)."""
        raise NotImplementedError

    def eval_loss(self, model: torch.nn.Module, predictions, label_ids) -> float:
        """The loss per labelled sub-token over a whole split, from what `preprocess_logits_for_metrics` kept."""
        raise NotImplementedError

    # -- prediction

    def row_outputs(self, logits: torch.Tensor) -> list[Sequence]:
        """Per row of a batch's float32 logits (B, T, L): the output kept at every sub-token."""
        raise NotImplementedError

    def decode_words(self, model: torch.nn.Module, word_outputs: Sequence[Sequence]) -> list[list[tuple[int, float]]]:
        """Every sentence's per-word outputs (one per word, windows merged) -> one (label id, score) per word."""
        raise NotImplementedError

    def word_posteriors(self, model: torch.nn.Module, word_logits: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Every sentence's (words, labels) logits, one vector per word (`NerPredictor.word_logits`) ->
        its (words, labels) posteriors at the head's temperature; each row sums to 1."""
        temperature = self.temperature or 1.0
        return [(torch.as_tensor(x).float() / temperature).softmax(dim=-1) for x in word_logits]

    def decode_word_label_ids(self, model: torch.nn.Module, word_outputs: Sequence[Sequence]) -> list[list[int]]:
        """One label id per word from per-word outputs of `eval_row_outputs` (evaluation needs no scores)."""
        return [[label_id for label_id, _ in sentence] for sentence in self.decode_words(model, word_outputs)]
