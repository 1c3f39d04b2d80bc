"""The token-classification head interface: everything that depends on how a model turns its encoder's states
into entities.

A head with weights of its own is an `nn.Module` of the model (the CRF: `model.crf`, a module of the model class
`Head.model_class` returns, so `save_pretrained`/`from_pretrained` round-trip it); a `Head` object is the
strategy around it, bound to a model by `bind` so that none of its methods needs the model passed in:

- `model_class`: the class of a model with this head, given the plain HF token-classification class;
- `own_modules`: fresh modules of the head's own weights for a config (what the model class adds);
- `loss`: the training loss, summed over the labelled sub-tokens (`NerTrainer.compute_loss` divides);
- `preprocess_logits_for_metrics` / `eval_row_outputs` / `eval_loss`: what evaluation keeps of the logits,
  and the split-wide token-mean loss computed from it;
- `row_outputs` / `decode_words`: per-sub-token outputs of a forward pass, and the per-word (label id,
  score) decoded from them once windows are merged to one output per word;
- `decode_sentences`: per sentence its tags, word scores and entities `(type, start_word, end_word, score)`;
  a flat head derives the entities from its tags, a head of nested spans decodes them directly
  (`nested_entities`: evaluation then scores exact span sets); `decode_eval`: the same from what evaluation kept;
- `encode_labels`: the `labels` column it trains on, from the encoded windows and the split (default: the
  per-sub-token label ids as encoded);
- `word_posteriors` / `temperature`: every word's label posteriors (softmax, or CRF marginals), at the
  calibration temperature that also divides the logits behind scores (`evaluation.calibration`);
- `param_groups`: extra optimizer parameter groups (its own learning rate; the output layer's at
  `classifier_learning_rate`);
- `start_at_label_prior`: a fresh output layer's bias set from the training labels' frequencies;
- `extend_labels`: new labels appended to a fine-tuned model's, every old label's weights kept
  (`label_mismatch=extend`).

Adding a head: one module here with a `Head` subclass and one line in `heads.HEADS`. A head that is not one
tag per word fits the same way (`span.py`, nested spans): its `model_class` returns per-sub-token vectors as
`logits`, `row_outputs` keeps them, windows merge them to one vector per word, and its `decode_sentences`
scores candidate word spans with its bound modules and returns the entities directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from nertune.data.align import IGNORE_INDEX
from nertune.errors import ModelError
from nertune.schemes import normalize_scheme, repair_tags, tags_to_spans

if TYPE_CHECKING:
    from nertune.recipe.schema import Recipe


_CLASSIFIER_NAMES = ("classifier", "score")  # the output layer of HF token-classification models

Entity = tuple[str, int, int, float]  # (type, first word, end word exclusive, score)


@dataclass
class Decoded:
    """A sentence as a head decodes it: one tag and score per word, and its entities (word offsets)."""

    tags: list[str]
    scores: list[float]
    entities: list[Entity]


def _output_layer(model: torch.nn.Module, peft_wrapped: bool = False) -> torch.nn.Module:
    """The output layer of a token-classification model (`classifier`, or `score` for some architectures); with
    `peft_wrapped`, also peft's wrapper of it (a peft model forwards the attribute to the model it wraps)."""
    model = unwrap_model(model)
    for name in _CLASSIFIER_NAMES:
        layer = getattr(model, name, None)
        if isinstance(layer, torch.nn.Linear) or (peft_wrapped and hasattr(layer, "modules_to_save")):
            return layer
    raise ModelError(f"{type(model).__name__}: no linear output layer named {' or '.join(_CLASSIFIER_NAMES)}")


def classifier_layer(model: torch.nn.Module) -> torch.nn.Linear:
    """The output layer of a token-classification model (`classifier`, or `score` for some architectures)."""
    return _output_layer(model)


def trained_classifier_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The trainable parameters of the output layer: the layer's own, or under LoRA the copy that peft trains
    (`modules_to_save`; the original stays frozen)."""
    return [p for p in _output_layer(model, peft_wrapped=True).parameters() if p.requires_grad]


def labelled_ids(features) -> np.ndarray:
    """Every label id of the `labels` column of encoded windows, the ignored positions left out."""
    ids = np.concatenate([np.asarray(row, dtype=np.int64) for row in features["labels"]] or [np.zeros(0, int)])
    return ids[ids != IGNORE_INDEX]


def set_bias_to_log_prior(layer: torch.nn.Linear, counts: np.ndarray) -> None:
    """`layer`'s bias := the log of each output's count + 1, centred: softmax of it is the smoothed prior."""
    log_share = torch.log(torch.as_tensor(counts, dtype=torch.float64) + 1.0)
    with torch.no_grad():
        layer.bias.copy_((log_share - log_share.mean()).to(layer.bias.dtype))


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside DDP/accelerate wrappers (`.module`), where a head keeps its own modules."""
    while hasattr(model, "module") and isinstance(model.module, torch.nn.Module):
        model = model.module
    return model


def config_labels(config: Any) -> list[str]:
    """The label list of a config's `id2label`, in id order."""
    id2label = config.id2label
    return [str(id2label[i]) for i in sorted(id2label, key=int)]


class Head:
    """A token-classification head; subclasses set `name` (the recipe's `head` value) and override what differs."""

    name: ClassVar[str]
    # The attribute names of the head's own modules in the model (`own_modules`), e.g. ("crf",).
    module_names: ClassVar[tuple[str, ...]] = ()
    # What the model card tells `pipeline()` users about this head ("" when pipeline() decodes it as nertune does).
    pipeline_note: ClassVar[str] = ""
    # Whether `pipeline()` reads the model's entities at all (when not, the card shows no pipeline() code).
    pipeline_decodes: ClassVar[bool] = True
    # Whether its entities may nest (every level, not only the tags' spans): evaluation then scores span sets.
    nested_entities: ClassVar[bool] = False
    # Whether `word_posteriors` are its words' label posteriors, so a temperature fitted on them calibrates its
    # entity scores (`evaluation.calibration`).
    calibrated_by_temperature: ClassVar[bool] = True

    def __init__(self, scheme: str = "IOB2", classifier_learning_rate: float | None = None) -> None:
        self.scheme = normalize_scheme(scheme)
        self.classifier_learning_rate = classifier_learning_rate  # the output layer's (None: the encoder's)
        self._model: torch.nn.Module | None = None  # the model `bind` set
        # Calibration (the `nertune` section's `calibration`): divides the logits behind scores, never decisions.
        self.temperature: float | None = None

    def __repr__(self) -> str:
        rate = self.classifier_learning_rate
        return (
            f"{type(self).__name__}(scheme={self.scheme!r}"
            + ("" if rate is None else f", classifier_learning_rate={rate!r}")
            + ")"
        )

    @classmethod
    def from_recipe(cls, recipe: Recipe, scheme: str) -> Head:
        """The head a training recipe asks for, training in `scheme`."""
        return cls(scheme, classifier_learning_rate=recipe.classifier_learning_rate)

    @classmethod
    def from_settings(cls, scheme: str, settings: dict[str, Any]) -> Head:
        """The head a trained model's config.json describes (its `nertune` section: scheme, `head_settings`)."""
        return cls(scheme)

    def settings(self) -> dict[str, Any]:
        """The head's own settings that inference needs, saved as the section's `head_settings`."""
        return {}

    # -- the model

    def model_class(self, base: type) -> type:
        """The class of a model with this head, given the plain HF token-classification class `base`."""
        return base

    def own_modules(self, config: Any) -> dict[str, torch.nn.Module]:
        """Fresh modules of the head's own weights (attribute name -> module) for a model of `config`."""
        return {}

    def bind(self, model: torch.nn.Module) -> Head:
        """Use `model`'s own modules of this head from now on (the model being trained or predicted); returns self."""
        self._model = model
        return self

    def extend_labels(self, model: torch.nn.Module, old_labels: Sequence[str], new_labels: Sequence[str]) -> None:
        """Grow the head of `model` from `old_labels` (the model's, in its order) to `new_labels` (`old_labels`
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

    def start_at_label_prior(self, model: torch.nn.Module, features) -> None:
        """Set a fresh output layer's bias to the log of each label's share of the training labels (the
        `labels` column of `encode_labels`, add-one smoothed, centred): the model starts out predicting the
        label distribution, mostly O, so the first steps go to entities instead of to learning that prior."""
        layer = classifier_layer(model)
        if layer.bias is None:
            return
        label_counts = np.bincount(labelled_ids(features), minlength=layer.out_features)
        if len(label_counts) != layer.out_features:
            raise ModelError(
                f"training label ids go up to {len(label_counts) - 1}, the classifier has {layer.out_features} outputs"
            )
        set_bias_to_log_prior(layer, label_counts)

    def param_groups(self) -> list[dict[str, Any]]:
        """Optimizer parameter groups of the head's own parameters ("params", "lr", ...); [] for none."""
        if self.classifier_learning_rate is None:
            return []
        if self._model is None:
            raise ModelError(f"{type(self).__name__} is not bound to a model (Head.bind)")
        # The output layer starts from random weights: it may learn faster than the pretrained encoder.
        params = trained_classifier_parameters(self._model)
        return [{"params": params, "lr": self.classifier_learning_rate, "weight_decay": 0.0}]

    # -- training and evaluation

    def encode_labels(self, features, split, labels: Sequence[str]):
        """The encoded windows of `split` (a `datasets.Dataset` with `tokens`, `ner_tags`, maybe `spans`) with
        the `labels` column this head trains on; the default keeps the per-sub-token label ids."""
        return features

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The loss summed over the labelled sub-tokens (`labels != -100`) of the batch."""
        raise NotImplementedError

    def preprocess_logits_for_metrics(self, logits, labels):
        """What evaluation keeps of a batch's logits (the Trainer's `preprocess_logits_for_metrics`)."""
        raise NotImplementedError

    def eval_row_outputs(self, predictions) -> Sequence:
        """Per row, per sub-token outputs from what `preprocess_logits_for_metrics` kept (all batches)."""
        raise NotImplementedError

    def eval_loss(self, predictions, label_ids) -> float:
        """The loss per labelled sub-token over a whole split, from what `preprocess_logits_for_metrics` kept."""
        raise NotImplementedError

    # -- prediction

    def row_outputs(self, logits: torch.Tensor) -> list[Sequence]:
        """Per row of a batch's float32 logits (B, T, L): the output kept at every sub-token."""
        raise NotImplementedError

    def decode_words(self, word_outputs: Sequence[Sequence]) -> list[list[tuple[int, float]]]:
        """Every sentence's per-word outputs (one per word, windows merged) -> one (label id, score) per word."""
        raise NotImplementedError

    def word_posteriors(self, word_logits: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Every sentence's (words, labels) logits, one vector per word (`NerPredictor.word_logits`) ->
        its (words, labels) posteriors at the head's temperature; each row sums to 1."""
        temperature = self.temperature or 1.0
        return [(torch.as_tensor(x).float() / temperature).softmax(dim=-1) for x in word_logits]

    def decode_word_label_ids(self, word_outputs: Sequence[Sequence]) -> list[list[int]]:
        """One label id per word from per-word outputs of `eval_row_outputs` (evaluation needs no scores)."""
        return [[label_id for label_id, _ in sentence] for sentence in self.decode_words(word_outputs)]

    def decode_eval(self, word_outputs: Sequence[Sequence], labels: Sequence[str]) -> list[Decoded]:
        """Every sentence decoded from per-word outputs of `eval_row_outputs`: its tags (repaired in the
        scheme) and entities (the tags' spans; no scores: evaluation needs none)."""
        results = []
        for ids in self.decode_word_label_ids(word_outputs):
            tags = repair_tags([labels[int(i)] for i in ids], self.scheme)
            entities = [(t, i, j, 0.0) for t, i, j in tags_to_spans(tags, self.scheme)]
            results.append(Decoded(tags, [0.0] * len(tags), entities))
        return results

    def decode_sentences(self, word_outputs: Sequence[Sequence], labels: Sequence[str]) -> list[Decoded]:
        """Every sentence's tags (repaired to be valid in the scheme: an I-X after O becomes B-X, the spans
        stay the same), word scores and entities, each scored by the mean of its words' scores."""
        results = []
        for predicted in self.decode_words(word_outputs):
            tags = repair_tags([labels[label_id] for label_id, _ in predicted], self.scheme)
            scores = [score for _, score in predicted]
            entities = [(type_, i, j, sum(scores[i:j]) / (j - i)) for type_, i, j in tags_to_spans(tags, self.scheme)]
            results.append(Decoded(tags, scores, entities))
        return results
