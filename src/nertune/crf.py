"""An optional linear-chain CRF head (`head: crf`) over the word-level emissions of a token-classification model.

The model stays a plain HF token-classification model: its `logits` are the CRF's emission scores at every
sub-token. The CRF (`model.crf`, a `LinearChainCRF`) adds start, end and transition scores and runs over one
position per word, the word's FIRST sub-token:

- training: the positions whose label is not -100 (`neg_log_likelihood`, called by `NerTrainer.compute_loss`);
- prediction: the merged per-word emission vectors of a whole sentence (windows merged first, so a long
  sentence is decoded in one piece), decoded by constrained Viterbi (`decode`, `decode_words`).

Transitions the tag scheme forbids (IOB2: O -> I-X, B-X -> I-Y, start -> I-X; BIOES: anything but I-X/E-X
after B-X/I-X, I-X/E-X after O/E/S or at the start, B-X/I-X at the end) are masked at decoding time only,
so Viterbi never emits a sequence `schemes.is_valid_sequence` rejects. Training uses the learned scores
unmasked: a window of a long sentence may start inside an entity (I-X first), which the mask would make
impossible (infinite loss).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from .align import IGNORE_INDEX
from .schemes import is_valid_sequence, normalize_scheme, parse_tag

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
        transition = [[any(is_valid_sequence([*context, labels[i], labels[j]], scheme) for context in contexts)
                       for j in range(n)] for i in range(n)]
        return start, transition, [True] * n
    parsed = [parse_tag(label) for label in labels]  # BIOES / BILOU (L, U read as E, S)
    opens = [prefix in ("B", "I") for prefix, _ in parsed]  # an entity awaiting its E-
    closed_next = [prefix in ("O", "B", "S") for prefix, _ in parsed]
    start = list(closed_next)
    transition = [[(parsed[j][0] in ("I", "E") and parsed[j][1] == parsed[i][1]) if opens[i] else closed_next[j]
                   for j in range(n)] for i in range(n)]
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
        start, transition, end = allowed_transitions(self.labels, self.scheme)
        # Not saved: rebuilt from the labels and the scheme (config.json) on loading.
        self.register_buffer("allowed_start", torch.tensor(start), persistent=False)
        self.register_buffer("allowed_transitions", torch.tensor(transition), persistent=False)
        self.register_buffer("allowed_end", torch.tensor(end), persistent=False)

    def extra_repr(self) -> str:
        return f"num_tags={len(self.labels)}, scheme={self.scheme}"

    # -- scores

    def _scores(self, constrained: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        start, transitions, end = (self.start_transitions.float(), self.transitions.float(),
                                   self.end_transitions.float())
        if constrained:
            start = start.masked_fill(~self.allowed_start, _FORBIDDEN)
            transitions = transitions.masked_fill(~self.allowed_transitions, _FORBIDDEN)
            end = end.masked_fill(~self.allowed_end, _FORBIDDEN)
        return start, transitions, end

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
    def decode(self, emissions: torch.Tensor, mask: torch.Tensor | None = None,
               constrained: bool = True) -> list[list[int]]:
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


def decode_words(crf: LinearChainCRF, word_emissions: Sequence[Sequence], batch_size: int = 256) -> list[list[int]]:
    """Constrained Viterbi over each sentence's per-word emission vectors (one vector per word, windows
    already merged); one label id per word. Empty sentences give []."""
    device = crf.transitions.device
    results: list[list[int]] = [[] for _ in word_emissions]
    order = [i for i in sorted(range(len(word_emissions)), key=lambda i: len(word_emissions[i]))
             if len(word_emissions[i])]
    for first in range(0, len(order), batch_size):
        chunk = order[first:first + batch_size]
        width = len(word_emissions[chunk[-1]])
        n_labels = len(crf.labels)
        batch = np.zeros((len(chunk), width, n_labels), dtype=np.float32)
        mask = np.zeros((len(chunk), width), dtype=bool)
        for row, i in enumerate(chunk):
            vectors = np.asarray([np.asarray(v, dtype=np.float32) for v in word_emissions[i]])
            batch[row, :len(vectors)] = vectors[:, :n_labels]
            mask[row, :len(vectors)] = True
        paths = crf.decode(torch.from_numpy(batch).to(device), torch.from_numpy(mask).to(device))
        for i, path in zip(chunk, paths):
            results[i] = path
    return results


def emission_logits(logits, labels=None):
    """`preprocess_logits_for_metrics` of a CRF model: keep every sub-token's emission scores (Viterbi needs
    the whole vector per word), as float32 so batches of any precision concatenate."""
    if isinstance(logits, tuple):
        logits = logits[0]
    return logits.float()
