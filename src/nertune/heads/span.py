"""The span head (`head: span`): nested entities, every candidate word span classified on its own.

The model is the HF token-classification model of its architecture with its output layer replaced by the
`span` module (`SpanScorer`, `span_model_class`): its `logits` are, at every sub-token, a start and an end
vector (`SpanScorer.boundaries` of the encoder's state). A word is read at its FIRST sub-token, as every
nertune head reads it, so windows merge one vector per word (`align.merge_window_predictions`) and the rest
of the pipeline (windows, packing, export) is that of the linear head. The span (i, j) of words i..j-1 is
scored from word i's start vector, word j-1's end vector and a width embedding: an MLP -> the entity types
plus "no entity" (class 0). The end word's first sub-token stands for the end: it is the only position the
merged windows keep, and the encoder's attention carries the rest of the word into it.

- Training: every span of 1..`max_width` words inside a window is a candidate (about `max_width` per word,
  so no negative subsampling is needed); its gold class comes from the `spans` column (nested data: every
  level) or from the tags (flat data). The classes of all candidates starting at a word are packed into that
  word's one integer label (`encode_labels`: a digit per width, base `n_types + 2`, the top digit meaning
  "no candidate": the span leaves the window), so collators, packing and the token-count normalisation of
  `NerTrainer` carry them unchanged. The loss sums the candidates' cross-entropies.
- Decoding (`resolve_spans`): each candidate takes its best class; entity candidates are accepted greedily by
  score, a span is dropped when it crosses one already accepted (overlaps it without one containing the
  other); nested spans stay. The tags are the outermost accepted spans; entities carry every level.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from nertune.data.align import IGNORE_INDEX
from nertune.errors import ModelError
from nertune.heads import base as head_base
from nertune.heads.base import _CLASSIFIER_NAMES, Decoded, Entity, Head, config_labels, unwrap_model
from nertune.schemes import entity_types, spans_to_tags, tags_to_spans

if TYPE_CHECKING:
    from nertune.recipe.schema import Recipe

logger = logging.getLogger(__name__)

DEFAULT_MAX_WIDTH = 8
DEFAULT_SIZE = 256  # the width of the start/end vectors and of the span MLP
_MAX_CODE = 2**62  # the packed labels of a word stay in int64


class SpanScorer(nn.Module):
    """Start/end projections of the encoder's states, a width embedding and the span MLP."""

    def __init__(self, hidden_size: int, n_types: int, max_width: int, size: int = DEFAULT_SIZE) -> None:
        super().__init__()
        self.size = size
        self.max_width = max_width
        self.boundaries = nn.Linear(hidden_size, 2 * size)
        self.width = nn.Embedding(max_width, size)
        self.norm = nn.LayerNorm(size)
        self.classifier = nn.Linear(size, n_types + 1)

    def extra_repr(self) -> str:
        return f"types={self.classifier.out_features - 1}, max_width={self.max_width}"

    def forward(self, starts: torch.Tensor, ends: torch.Tensor, width: int) -> torch.Tensor:
        """Class logits of spans of `width` words, given their start and end word vectors (..., size)."""
        x = starts + ends + self.width.weight[width - 1]
        return self.classifier(nn.functional.gelu(self.norm(x)))

    def width_logits(self, vectors: torch.Tensor):
        """For each width k = 1..max_width (while it fits): (k, class logits (B, L-k+1, C)) of the spans starting
        at every word of `vectors` (B, L, 2*size), the packed per-word outputs of `logits`."""
        vectors = vectors.to(self.boundaries.weight.dtype)
        starts, ends = vectors[..., : self.size], vectors[..., self.size :]
        length = vectors.shape[1]
        for k in range(1, min(self.max_width, length) + 1):
            yield k, self(starts[:, : length - k + 1], ends[:, k - 1 :], k)


def _head_settings(config: Any) -> dict[str, Any]:
    section = getattr(config, "nertune", None) or {}
    return section.get("head_settings") or {}


def _new_scorer(config: Any) -> SpanScorer:
    settings = _head_settings(config)
    return SpanScorer(
        config.hidden_size,
        len(entity_types(config_labels(config))),
        int(settings.get("max_width", DEFAULT_MAX_WIDTH)),
        int(settings.get("size", DEFAULT_SIZE)),
    )


@functools.cache
def span_model_class(base: type) -> type:
    """`base` (an HF token-classification class) whose output layer is the identity and whose `logits` are
    the `span` module's start/end vectors of every sub-token."""

    def __init__(self, config, *args, **kwargs):
        base.__init__(self, config, *args, **kwargs)
        for name in _CLASSIFIER_NAMES:  # the per-label output layer has no use here: the span module scores
            if isinstance(getattr(self, name, None), nn.Linear):
                setattr(self, name, nn.Identity())
        self.span = _new_scorer(config)

    @functools.wraps(base.forward)  # its signature: the Trainer keeps the dataset columns the forward takes
    def forward(self, *args, **kwargs):
        output = base.forward(self, *args, **kwargs)
        output["logits"] = self.span.boundaries(output["logits"])
        return output

    name = f"{base.__name__}WithSpans"
    # In the base's module: transformers reads a model's module source to tell which attention kernels it takes.
    return type(name, (base,), {"__init__": __init__, "forward": forward, "__module__": base.__module__})


def pack_words(
    logits: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every row's labelled positions (its words' first sub-tokens) moved to its front, in order:
    (word vectors (B, L, D), word labels (B, L), prefix mask (B, L), their positions in the row (B, L))."""
    labels = labels.to(logits.device)
    labelled = labels.ne(IGNORE_INDEX)
    order = torch.argsort((~labelled).to(torch.int8), dim=1, stable=True)
    width = max(int(labelled.sum(1).max()), 1) if labels.numel() else 1
    order = order[:, :width]
    vectors = logits.gather(1, order[:, :, None].expand(-1, -1, logits.shape[-1]))
    return vectors, labels.gather(1, order), labelled.gather(1, order), order


def resolve_spans(candidates: Sequence[Entity]) -> list[Entity]:
    """The decoding rule: candidates accepted greedily by score (ties: the longer, then the earlier span);
    one that crosses an accepted span (overlaps it, neither containing the other) is dropped, nested ones stay.
    Returned outer first: by start, then longest."""
    accepted: list[Entity] = []
    for candidate in sorted(candidates, key=lambda e: (-e[3], -(e[2] - e[1]), e[1])):
        _, start, end, _ = candidate
        crosses = any(
            s < end and start < e and not (s <= start and end <= e or start <= s and e <= end)
            for _, s, e, _ in accepted
        )
        if not crosses:
            accepted.append(candidate)
    return sorted(accepted, key=lambda e: (e[1], -e[2]))


def outermost(entities: Sequence[Entity]) -> list[Entity]:
    """The entities no other entity contains (disjoint when no two cross, as `resolve_spans` leaves them)."""
    return [
        e
        for e in entities
        if not any(o is not e and o[1] <= e[1] and e[2] <= o[2] and (o[1], o[2]) != (e[1], e[2]) for o in entities)
    ]


class SpanHead(Head):
    """`head: span`: the `span` module scores candidate word spans; entities of every level (see the module doc)."""

    name = "span"
    module_names = ("span",)
    nested_entities = True
    pipeline_decodes = False
    calibrated_by_temperature = False  # its outputs per word are start/end vectors, not label posteriors
    pipeline_note = """
This model has a span head (`span.*` in model.safetensors, nested entities): `pipeline()` cannot decode it
(the model's outputs are span boundary vectors, not tag scores), so use nertune (`nertune predict`, `nertune
serve` or `NerPredictor`) to read its entities.
"""

    def __init__(
        self,
        scheme: str = "IOB2",
        max_width: int = DEFAULT_MAX_WIDTH,
        size: int = DEFAULT_SIZE,
        learning_rate: float | None = None,
    ) -> None:
        super().__init__(scheme)
        self.max_width = max_width
        self.size = size
        self.learning_rate = learning_rate  # the span module's own learning rate (None: the encoder's)
        self.scorer: SpanScorer | None = None

    def __repr__(self) -> str:
        return f"SpanHead(scheme={self.scheme!r}, max_width={self.max_width}, learning_rate={self.learning_rate!r})"

    @classmethod
    def from_recipe(cls, recipe: Recipe, scheme: str) -> SpanHead:
        return cls(scheme, recipe.span_max_width, learning_rate=recipe.span_learning_rate)

    @classmethod
    def from_settings(cls, scheme: str, settings: dict[str, Any]) -> SpanHead:
        return cls(scheme, int(settings.get("max_width", DEFAULT_MAX_WIDTH)), int(settings.get("size", DEFAULT_SIZE)))

    def settings(self) -> dict[str, Any]:
        return {"max_width": self.max_width, "size": self.size}

    # -- the model

    def model_class(self, base: type) -> type:
        return span_model_class(base)

    def own_modules(self, config: Any) -> dict[str, torch.nn.Module]:
        labels = config_labels(config)
        scorer = SpanScorer(config.hidden_size, len(entity_types(labels)), self.max_width, self.size)
        std = getattr(config, "initializer_range", 0.02)
        for module in scorer.modules():  # as the model's initialiser starts a fresh output layer
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, 0.0, std)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
        return {"span": scorer}

    def bind(self, model: torch.nn.Module) -> SpanHead:
        scorer = getattr(unwrap_model(model), "span", None)
        if not isinstance(scorer, SpanScorer):
            raise ModelError(f"{type(unwrap_model(model)).__name__} has no span module: is it a model of head=span?")
        self.scorer = scorer
        self._model = model  # its config has the labels (`decode_words`)
        return self

    def _bound(self) -> SpanScorer:
        if self.scorer is None:
            raise ModelError("the span head is not bound to a model (Head.bind)")
        return self.scorer

    def extend_labels(self, model: torch.nn.Module, old_labels: Sequence[str], new_labels: Sequence[str]) -> None:
        raise ModelError("label_mismatch=extend is not supported by head=span; use label_mismatch=reset")

    def start_at_label_prior(self, model: torch.nn.Module, features) -> None:
        """Set the scorer's output bias to the log of each class's share of the training candidates (the
        packed `labels` column of `encode_labels`, add-one smoothed, centred): nearly every candidate span is
        "no entity", and the untrained scorer then already says so."""
        layer = self.bind(model).scorer.classifier
        base = layer.out_features + 1  # the classes, then the digit of "no candidate"
        codes = head_base.labelled_ids(features)
        class_counts = np.zeros(layer.out_features, dtype=np.int64)
        for _ in range(self.max_width):  # one digit per width
            digits = codes % base
            class_counts += np.bincount(digits[digits != base - 1], minlength=layer.out_features)
            codes = codes // base
        head_base.set_bias_to_log_prior(layer, class_counts)

    def param_groups(self) -> list[dict[str, Any]]:
        if self.learning_rate is None:
            return []
        # The span module starts from random weights: it may learn faster than the pretrained encoder.
        return [{"params": list(self._bound().parameters()), "lr": self.learning_rate}]

    # -- training labels

    def encode_labels(self, features, split, labels: Sequence[str]):
        """Replace the `labels` column of encoded windows by every word's packed candidate classes (see the
        module doc): gold spans from the split's `spans` column when it has one, else from its tags."""
        types = {type_: i + 1 for i, type_ in enumerate(entity_types(labels))}
        base = len(types) + 2
        if base**self.max_width >= _MAX_CODE:
            raise ModelError(
                f"head=span: {len(types)} entity types and max_width={self.max_width} do not fit the "
                "packed labels (int64); lower span_max_width"
            )
        nested = split["spans"] if "spans" in split.column_names else None
        gold: list[dict[tuple[int, int], int]] = []
        too_long = 0
        for i, tags in enumerate(split["ner_tags"]):
            spans = (
                [(s["type"], s["start"], s["end"]) for s in nested[i] or []]
                if nested is not None
                else tags_to_spans(tags, self.scheme)
            )
            too_long += sum(end - start > self.max_width for _, start, end in spans)
            gold.append({(start, end): types[t] for t, start, end in spans if t in types})
        if too_long:
            logger.warning(
                "head=span: %d gold spans are longer than span_max_width=%d words and cannot be learned",
                too_long,
                self.max_width,
            )

        def encode(row):
            spans, end = gold[row["example_index"]], row["word_end"]
            codes = []
            for w in row["word_index"]:
                if w < 0:
                    codes.append(IGNORE_INDEX)
                    continue
                code = 0
                for k in range(self.max_width, 0, -1):
                    digit = base - 1 if w + k > end else spans.get((w, w + k), 0)
                    code = code * base + digit
                codes.append(code)
            return {"labels": codes}

        return features.map(encode, desc="span labels")

    def _candidate_losses(self, logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(per word the summed cross-entropy of its candidate spans (B, L), the words' row positions (B, L))."""
        scorer = self._bound()
        vectors, codes, mask, order = pack_words(logits, labels)
        codes = codes.clamp(min=0)
        base = scorer.classifier.out_features + 1
        losses = torch.zeros(codes.shape, dtype=torch.float32, device=logits.device)
        for k, scores in scorer.width_logits(vectors):
            n = scores.shape[1]
            digit = torch.div(codes[:, :n], base ** (k - 1), rounding_mode="floor") % base
            valid = mask[:, :n] & mask[:, k - 1 :] & digit.ne(base - 1)
            target = digit.masked_fill(~valid, IGNORE_INDEX)
            loss = nn.functional.cross_entropy(
                scores.float().transpose(1, 2), target, ignore_index=IGNORE_INDEX, reduction="none"
            )
            losses[:, :n] += loss
        return losses * mask, order

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self._candidate_losses(logits, labels)[0].sum()

    @torch.no_grad()  # the Trainer calls it outside its no_grad forward, and the span module has parameters
    def preprocess_logits_for_metrics(self, logits, labels):
        """Keep the start/end vectors (decoding needs whole sentences, after windows merge) and, given labels,
        each word's candidate loss at its first sub-token (the split-wide evaluation loss)."""
        if isinstance(logits, tuple):
            logits = logits[0]
        if labels is None:
            return logits
        losses, order = self._candidate_losses(logits, labels)
        token_loss = torch.zeros(labels.shape, dtype=torch.float32, device=logits.device)
        return logits, token_loss.scatter_(1, order, losses)

    def eval_row_outputs(self, predictions) -> Sequence:
        return predictions[0] if isinstance(predictions, tuple) else predictions

    def eval_loss(self, predictions, label_ids) -> float:
        _, token_loss = predictions
        labelled = label_ids != IGNORE_INDEX
        return float(token_loss[labelled].mean()) if labelled.any() else 0.0

    # -- prediction

    def row_outputs(self, logits: torch.Tensor) -> list[Sequence]:
        return list(logits.float().cpu().numpy())

    def decode_words(self, word_outputs: Sequence[Sequence]) -> list[list[tuple[int, float]]]:
        """The outer level's label id and score per word (the bound model's labels)."""
        labels = config_labels(unwrap_model(self._model).config)
        label2id = {label: i for i, label in enumerate(labels)}
        decoded = self.decode_sentences(word_outputs, labels)
        return [[(label2id[t], score) for t, score in zip(d.tags, d.scores)] for d in decoded]

    def decode_eval(self, word_outputs: Sequence[Sequence], labels: Sequence[str]) -> list[Decoded]:
        return self.decode_sentences(word_outputs, labels)

    @torch.no_grad()
    def decode_sentences(
        self, word_outputs: Sequence[Sequence], labels: Sequence[str], batch_size: int = 64
    ) -> list[Decoded]:
        """Per sentence its entities of every level (`resolve_spans`), the outermost as tags; a word's score
        is that of the outermost entity covering it, else the probability that it starts no one-word entity."""
        scorer = self._bound()
        types = entity_types(labels)
        device = scorer.classifier.weight.device
        results: list[Decoded | None] = [None] * len(word_outputs)
        order = sorted(range(len(word_outputs)), key=lambda i: len(word_outputs[i]))
        for first in range(0, len(order), batch_size):
            chunk = order[first : first + batch_size]
            width = max(max(len(word_outputs[i]) for i in chunk), 1)
            batch = np.zeros((len(chunk), width, 2 * scorer.size), dtype=np.float32)
            for row, i in enumerate(chunk):
                if len(word_outputs[i]):
                    batch[row, : len(word_outputs[i])] = np.stack(
                        [np.asarray(v, dtype=np.float32) for v in word_outputs[i]]
                    )
            candidates: list[list[Entity]] = [[] for _ in chunk]
            none_single = np.ones((len(chunk), width), dtype=np.float32)
            for k, scores in scorer.width_logits(torch.from_numpy(batch).to(device)):
                probabilities = scores.float().softmax(-1)
                best, best_class = probabilities[..., 1:].max(-1)
                is_entity = best > probabilities[..., 0]
                if k == 1:
                    none_single = probabilities[..., 0].cpu().numpy()
                for row, start in is_entity.nonzero().tolist():
                    if start + k <= len(word_outputs[chunk[row]]):
                        candidates[row].append(
                            (types[int(best_class[row, start])], start, start + k, float(best[row, start]))
                        )
            for row, i in enumerate(chunk):
                n = len(word_outputs[i])
                entities = resolve_spans(candidates[row])
                outer = outermost(entities)
                tags = spans_to_tags([(t, s, e) for t, s, e, _ in outer], n, self.scheme)
                scores = [float(none_single[row, w]) for w in range(n)]
                for _, s, e, score in outer:
                    scores[s:e] = [score] * (e - s)
                results[i] = Decoded(tags, scores, entities)
        return results
