"""The CRF head (`head: crf`): an optional linear-chain CRF over the word-level emissions of a
token-classification model.

The model is the HF token-classification model of its architecture with one module more: `crf`, a
`LinearChainCRF` (`crf_model_class`: a subclass of e.g. `BertForTokenClassification`, so `save_pretrained` /
`from_pretrained` round-trip the `crf.*` tensors with the others, and `pipeline()`, which loads the plain
class, ignores them). Its `logits` are the CRF's emission scores at every sub-token; the CRF adds start, end
and transition scores and runs over one position per word, the word's FIRST sub-token:

- training: the positions whose label is not -100 (`neg_log_likelihood`, the head's `loss`);
- prediction: the merged per-word emission vectors of a whole sentence (windows merged first, so a long
  sentence is decoded in one piece), decoded by constrained Viterbi (`decode`, `viterbi_words`).

Transitions the tag scheme forbids (IOB2: O -> I-X, B-X -> I-Y, start -> I-X; BIOES: anything but I-X/E-X
after B-X/I-X, I-X/E-X after O/E/S or at the start, B-X/I-X at the end) are masked at decoding time only,
so Viterbi never emits a sequence `schemes.is_valid_sequence` rejects. Training uses the learned scores
unmasked: a window of a long sentence may start inside an entity (I-X first), which the mask would make
impossible (infinite loss).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from nertune.data.align import IGNORE_INDEX
from nertune.errors import ModelError
from nertune.heads.base import Head, config_labels, unwrap_model
from nertune.schemes import is_valid_sequence, normalize_scheme, parse_tag

if TYPE_CHECKING:
    from nertune.recipe.schema import Recipe

_FORBIDDEN = -1e9  # added to a forbidden score when decoding: never the best path while a valid one exists


def allowed_transitions(labels: Sequence[str], scheme: str) -> tuple[list[bool], list[list[bool]], list[bool]]:
    """(start[j], transition[i][j], end[i]): whether label j may start a sentence, follow label i, and
    label i may end one, in `scheme` (the semantics of `schemes.is_valid_sequence`)."""
    scheme = normalize_scheme(scheme)
    n = len(labels)
    if scheme in ("IOB1", "IOB2"):  # validity is a property of adjacent pairs here
        start = [is_valid_sequence([label], scheme) for label in labels]
        # j may follow i when [i, j] is valid after some context that makes i itself valid (I-X needs B-X/I-X).
        contexts = [[]] + [[label] for label in labels]
        transition = [
            [any(is_valid_sequence([*context, labels[i], labels[j]], scheme) for context in contexts) for j in range(n)]
            for i in range(n)
        ]
        return start, transition, [True] * n
    parsed = [parse_tag(label) for label in labels]  # BIOES / BILOU (L, U read as E, S)
    opens = [prefix in ("B", "I") for prefix, _ in parsed]  # an entity awaiting its E-
    closed_next = [prefix in ("O", "B", "S") for prefix, _ in parsed]
    start = list(closed_next)
    transition = [
        [
            (parsed[j][0] in ("I", "E") and parsed[j][1] == parsed[i][1]) if opens[i] else closed_next[j]
            for j in range(n)
        ]
        for i in range(n)
    ]
    return start, transition, [not o for o in opens]


class LinearChainCRF(nn.Module):
    """Start, end and transition scores over `len(labels)` tags; constrained Viterbi by the tag scheme."""

    def __init__(self, labels: Sequence[str], scheme: str = "IOB2") -> None:
        super().__init__()
        n = len(labels)
        self.labels = list(labels)
        self.scheme = normalize_scheme(scheme)
        self.start_transitions = nn.Parameter(torch.zeros(n))
        self.end_transitions = nn.Parameter(torch.zeros(n))
        self.transitions = nn.Parameter(torch.zeros(n, n))
        # Not saved, not buffers: rebuilt from the labels and the scheme (config.json), per device, on first use.
        self._allowed: dict[torch.device, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def extra_repr(self) -> str:
        return f"num_tags={len(self.labels)}, scheme={self.scheme}"

    # -- scores

    def _scores(self, constrained: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        start, transitions, end = (
            self.start_transitions.float(),
            self.transitions.float(),
            self.end_transitions.float(),
        )
        if constrained:
            allowed_start, allowed_transitions_, allowed_end = self._allowed_masks(start.device)
            start = start.masked_fill(~allowed_start, _FORBIDDEN)
            transitions = transitions.masked_fill(~allowed_transitions_, _FORBIDDEN)
            end = end.masked_fill(~allowed_end, _FORBIDDEN)
        return start, transitions, end

    def _allowed_masks(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if device not in self._allowed:
            masks = allowed_transitions(self.labels, self.scheme)
            self._allowed[device] = tuple(torch.tensor(mask, device=device) for mask in masks)
        return self._allowed[device]

    def log_partition(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """log Z per sequence; `emissions` (B, T, L), `mask` (B, T) a prefix mask with mask[:, 0] true."""
        start, transitions, end = self._scores(constrained=False)
        score = start + emissions[:, 0]
        for t in range(1, emissions.shape[1]):
            step = torch.logsumexp(score[:, :, None] + transitions[None] + emissions[:, t, None, :], dim=1)
            score = torch.where(mask[:, t, None], step, score)
        return torch.logsumexp(score + end, dim=1)

    def sequence_score(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Unnormalised score of `tags` (B, T) per sequence."""
        start, transitions, end = self._scores(constrained=False)
        maskf = mask.to(emissions.dtype)
        emitted = emissions.gather(2, tags[:, :, None]).squeeze(2)
        score = start[tags[:, 0]] + (emitted * maskf).sum(1)
        score = score + (transitions[tags[:, :-1], tags[:, 1:]] * maskf[:, 1:]).sum(1)
        last = tags.gather(1, (mask.sum(1) - 1).clamp(min=0)[:, None]).squeeze(1)
        return score + end[last]

    def neg_log_likelihood(self, emissions: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Summed NLL of the labelled positions (`labels != -100`) of every row, read left to right as one
        sequence per row. Emissions are (B, T, L) sub-token scores; rows with no label count 0."""
        emissions, tags, mask = pack_labelled(emissions.float(), labels)
        if emissions.shape[0] == 0:
            return emissions.sum() * 0.0
        return (self.log_partition(emissions, mask) - self.sequence_score(emissions, tags, mask)).sum()

    # -- decoding

    @torch.no_grad()
    def decode(
        self, emissions: torch.Tensor, mask: torch.Tensor | None = None, constrained: bool = True
    ) -> list[list[int]]:
        """Best tag sequence of every row: `emissions` (B, T, L), `mask` (B, T) a prefix mask (None: all)."""
        emissions = emissions.float()
        batch, length, _ = emissions.shape
        if mask is None:
            mask = torch.ones(batch, length, dtype=torch.bool, device=emissions.device)
        mask = mask.bool()
        start, transitions, end = self._scores(constrained)
        score = start + emissions[:, 0]
        history = []
        for t in range(1, length):
            best, index = (score[:, :, None] + transitions[None]).max(dim=1)
            history.append(index)
            score = torch.where(mask[:, t, None], best + emissions[:, t], score)
        last = (score + end).argmax(dim=1).tolist()
        lengths = mask.sum(1).tolist()
        history = torch.stack(history, dim=0).cpu() if history else None  # (T-1, B, L)
        paths = []
        for b in range(batch):
            if lengths[b] == 0:
                paths.append([])
                continue
            tag = last[b]
            path = [tag]
            for t in range(lengths[b] - 1, 0, -1):
                tag = int(history[t - 1, b, tag])
                path.append(tag)
            paths.append(path[::-1])
        return paths


def pack_labelled(emissions: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Move every row's labelled positions to its front, in order: (emissions, tags, prefix mask), rows
    without any label dropped, trimmed to the longest labelled sequence."""
    labels = labels.to(emissions.device)
    labelled = labels.ne(IGNORE_INDEX)
    lengths = labelled.sum(1)
    keep = lengths > 0
    order = torch.argsort((~labelled).to(torch.int8), dim=1, stable=True)
    width = max(int(lengths.max()), 1) if labels.numel() else 1
    order = order[keep, :width]
    emissions = emissions[keep].gather(1, order[:, :, None].expand(-1, -1, emissions.shape[-1]))
    tags = labels[keep].gather(1, order).clamp(min=0)
    mask = torch.arange(width, device=emissions.device)[None] < lengths[keep][:, None]
    return emissions, tags, mask


def viterbi_words(crf: LinearChainCRF, word_emissions: Sequence[Sequence], batch_size: int = 256) -> list[list[int]]:
    """Constrained Viterbi over each sentence's per-word emission vectors (one vector per word, windows
    already merged); one label id per word. Empty sentences give []."""
    device = crf.transitions.device
    results: list[list[int]] = [[] for _ in word_emissions]
    order = [
        i for i in sorted(range(len(word_emissions)), key=lambda i: len(word_emissions[i])) if len(word_emissions[i])
    ]
    for first in range(0, len(order), batch_size):
        chunk = order[first : first + batch_size]
        width = len(word_emissions[chunk[-1]])
        n_labels = len(crf.labels)
        batch = np.zeros((len(chunk), width, n_labels), dtype=np.float32)
        mask = np.zeros((len(chunk), width), dtype=bool)
        for row, i in enumerate(chunk):
            vectors = np.asarray([np.asarray(v, dtype=np.float32) for v in word_emissions[i]])
            batch[row, : len(vectors)] = vectors[:, :n_labels]
            mask[row, : len(vectors)] = True
        paths = crf.decode(torch.from_numpy(batch).to(device), torch.from_numpy(mask).to(device))
        for i, path in zip(chunk, paths):
            results[i] = path
    return results


def _zero_crf(module: LinearChainCRF) -> None:
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.zero_()


@functools.cache
def crf_model_class(base: type) -> type:
    """`base` (an HF token-classification class, e.g. `BertForTokenClassification`) with a `crf` module:
    built for `config`'s labels and its `nertune` section's scheme, initialised to zero scores when a
    checkpoint has none (a fresh head)."""

    def __init__(self, config, *args, **kwargs):
        base.__init__(self, config, *args, **kwargs)
        self.crf = LinearChainCRF(config_labels(config), _config_scheme(config))

    def _init_weights(self, module):
        if isinstance(module, LinearChainCRF):
            from transformers import initialization

            # transformers' init functions skip the tensors a checkpoint loaded (`_is_hf_initialized`).
            for parameter in module.parameters():
                initialization.zeros_(parameter)
        else:
            base._init_weights(self, module)

    name = f"{base.__name__}WithCrf"
    # In the base's module: transformers reads a model's module source to tell which attention kernels it takes.
    return type(name, (base,), {"__init__": __init__, "_init_weights": _init_weights, "__module__": base.__module__})


def _config_scheme(config) -> str:
    section = getattr(config, "nertune", None) or {}
    return normalize_scheme(section.get("scheme", "IOB2"))


class CrfHead(Head):
    """`head: crf`: the CRF is the model's `crf` module (`crf_model_class`), saved with its weights as `crf.*`
    tensors (plain HF loading ignores them and gets the linear fallback)."""

    name = "crf"
    module_names = ("crf",)
    pipeline_note = """
This model has a CRF head (`crf.*` in model.safetensors): `pipeline()` ignores it and takes each word's best
tag on its own, so its tags can differ from the scores above and break the tag scheme. nertune decodes
with the CRF.
"""

    def __init__(
        self, scheme: str = "IOB2", learning_rate: float | None = None, classifier_learning_rate: float | None = None
    ) -> None:
        super().__init__(scheme, classifier_learning_rate)
        self.learning_rate = learning_rate  # the CRF scores' own learning rate (None: the encoder's)
        self.crf: LinearChainCRF | None = None  # the bound model's CRF (`bind`)

    def __repr__(self) -> str:
        return (
            f"CrfHead(scheme={self.scheme!r}, learning_rate={self.learning_rate!r}, "
            f"classifier_learning_rate={self.classifier_learning_rate!r})"
        )

    @classmethod
    def from_recipe(cls, recipe: Recipe, scheme: str) -> CrfHead:
        return cls(scheme, recipe.crf_learning_rate, recipe.classifier_learning_rate)

    # -- the model

    def model_class(self, base: type) -> type:
        return crf_model_class(base)

    def own_modules(self, config: Any) -> dict[str, torch.nn.Module]:
        crf = LinearChainCRF(config_labels(config), self.scheme)
        _zero_crf(crf)
        return {"crf": crf}

    def bind(self, model: torch.nn.Module) -> CrfHead:
        crf = getattr(unwrap_model(model), "crf", None)
        if not isinstance(crf, LinearChainCRF):
            raise ModelError(f"{type(unwrap_model(model)).__name__} has no CRF: is it a model of head=crf?")
        self.crf = crf
        return super().bind(model)

    def _bound(self) -> LinearChainCRF:
        if self.crf is None:
            raise ModelError("the CRF head is not bound to a model (Head.bind)")
        return self.crf

    def extend_labels(self, model: torch.nn.Module, old_labels: Sequence[str], new_labels: Sequence[str]) -> None:
        """The emission layer grows as the linear head's; the CRF's start/end/transition scores grow with
        zeros for the new labels, every entry among old labels kept."""
        super().extend_labels(model, old_labels, new_labels)
        old = self.bind(model).crf
        n = len(old_labels)
        grown = LinearChainCRF(list(new_labels), old.scheme).to(old.transitions.device)
        with torch.no_grad():
            _zero_crf(grown)
            grown.start_transitions[:n] = old.start_transitions
            grown.end_transitions[:n] = old.end_transitions
            grown.transitions[:n, :n] = old.transitions
        unwrap_model(model).crf = grown
        self.bind(model)

    def param_groups(self) -> list[dict[str, Any]]:
        groups = super().param_groups()  # the emission layer's, at classifier_learning_rate
        if self.learning_rate is None:
            return groups
        # The CRF's few scores start at 0 and learn far slower than the encoder at a fine-tuning rate.
        return [*groups, {"params": list(self._bound().parameters()), "lr": self.learning_rate, "weight_decay": 0.0}]

    # -- training and evaluation

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The CRF's negative log-likelihood of each row's labelled words, summed."""
        return self._bound().neg_log_likelihood(logits, labels)

    def preprocess_logits_for_metrics(self, logits, labels):
        """Every sub-token's emission scores (Viterbi needs the whole vector per word), as float32 so batches
        of any precision concatenate."""
        if isinstance(logits, tuple):
            logits = logits[0]
        return logits.float()

    def eval_row_outputs(self, predictions) -> Sequence:
        return predictions

    def eval_loss(self, predictions, label_ids) -> float:
        """The CRF loss per labelled word over the whole split, row by row: exact on N processes too."""
        crf = self._bound()
        labels = torch.as_tensor(label_ids)
        device = crf.transitions.device
        with torch.no_grad():
            nll = float(crf.neg_log_likelihood(torch.as_tensor(predictions).to(device), labels.to(device)))
        return nll / max(int(labels.ne(IGNORE_INDEX).sum()), 1)

    # -- prediction

    def row_outputs(self, logits: torch.Tensor) -> list[Sequence]:
        """The float32 emission score vector (a CPU tensor) at every sub-token."""
        return [list(row) for row in logits.cpu()]

    def decode_words(self, word_outputs: Sequence[Sequence]) -> list[list[tuple[int, float]]]:
        """Constrained Viterbi over each whole sentence; a word's score is the softmax probability of its
        Viterbi label under its emission scores, or, for a calibrated model (`temperature`), its CRF marginal."""
        results = []
        for vectors, path in zip(word_outputs, viterbi_words(self._bound(), word_outputs)):
            if not path:
                results.append([])
                continue
            emissions = torch.stack([torch.as_tensor(v) for v in vectors]).float()
            if self.temperature is not None:
                (probabilities,) = self.word_posteriors([emissions])
            else:
                probabilities = emissions.softmax(dim=-1)
            results.append([(label_id, float(probabilities[i, label_id])) for i, label_id in enumerate(path)])
        return results

    def decode_word_label_ids(self, word_outputs: Sequence[Sequence]) -> list[list[int]]:
        return viterbi_words(self._bound(), word_outputs)

    def word_posteriors(self, word_logits: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """CRF marginals (forward-backward over the transitions and the word emissions), at the temperature."""
        crf = self._bound()
        start, transitions, end = (
            x.detach().cpu() for x in (crf.start_transitions, crf.transitions, crf.end_transitions)
        )
        temperature = self.temperature or 1.0
        return [crf_marginals(torch.as_tensor(x).cpu(), start, transitions, end, temperature) for x in word_logits]


def crf_marginals(
    emissions: torch.Tensor, start: torch.Tensor, transitions: torch.Tensor, end: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """Per-position posterior P(tag_t = j | sentence) of a linear-chain CRF by forward-backward: `emissions`
    (T, L), `start`/`end` (L,), `transitions` (L, L) from tag i to tag j, every score divided by
    `temperature` (calibration). Returns (T, L); every row sums to 1. An empty sentence gives (0, L)."""
    emissions, start, transitions, end = (x.float() / temperature for x in (emissions, start, transitions, end))
    length = emissions.shape[0]
    if length == 0:
        return emissions.new_zeros((0, emissions.shape[-1]))
    alpha = [start + emissions[0]]
    for t in range(1, length):
        alpha.append(torch.logsumexp(alpha[-1][:, None] + transitions, dim=0) + emissions[t])
    beta = [end]
    for t in range(length - 1, 0, -1):
        beta.append(torch.logsumexp(transitions + (emissions[t] + beta[-1])[None, :], dim=1))
    log_marginals = torch.stack(alpha) + torch.stack(beta[::-1])
    return (log_marginals - torch.logsumexp(log_marginals, dim=1, keepdim=True)).exp()
