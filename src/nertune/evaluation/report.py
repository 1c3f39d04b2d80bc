"""Evaluation reports: label renaming, entity error analysis, bootstrap confidence intervals, plots.

Pure functions on word-level tag sequences (one tag per word, one list per sentence); `run_evaluation`
calls them and writes the files. matplotlib is optional: without it the plots are skipped with a warning.

Error analysis (`error_analysis`) pairs gold and predicted entity spans sentence by sentence, spans read
as `schemes.tags_to_spans` reads them (seqeval's default, conlleval-compatible mode). Every GOLD entity
falls into exactly one kind, checked in this order:

- ``exact``: a prediction with the same span and type;
- ``type``: a prediction with the same span and another type;
- ``boundary``: an overlapping prediction with the same type but another span;
- ``boundary_type``: only overlapping predictions with another span and another type;
- ``missed``: no overlapping prediction.

Every PREDICTED entity that overlaps no gold entity is ``spurious``. So the five gold kinds add up to the
number of gold entities; predictions that overlap a gold entity already explained by another prediction
(one gold entity split in two, say) are not counted again.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence

import numpy as np

from nertune.evaluation.plots import plot_confusion_matrix, plot_learning_curves  # re-exported: the old home
from nertune.schemes import normalize_scheme, tags_to_spans

__all__ = [
    "ERROR_KINDS",
    "error_analysis",
    "bootstrap_f1_ci",
    "format_error_summary",
    "format_mode_table",
    "plot_confusion_matrix",
    "plot_learning_curves",
    "sentence_error_counts",
]

logger = logging.getLogger(__name__)

ERROR_KINDS = ("exact", "type", "boundary", "boundary_type", "missed", "spurious")
NONE_GOLD = "none (spurious)"  # confusion-matrix row: a prediction that overlaps no gold entity
NONE_PRED = "none (missed)"  # confusion-matrix column: a gold entity that no prediction overlaps
BOUNDARY = "boundary (same type)"  # confusion-matrix column: same type, overlapping but another span

Span = tuple[str, int, int]


# --------------------------------------------------------------------------- label renaming

# --------------------------------------------------------------------------- error analysis


def _overlaps(a: Span, b: Span) -> bool:
    return a[1] < b[2] and b[1] < a[2]


def _best_overlap(gold: Span, preds: list[Span]) -> Span | None:
    """The prediction a gold entity is paired with: same span first, then same type, then most overlap."""
    candidates = [p for p in preds if _overlaps(gold, p)]
    if not candidates:
        return None

    def key(p: Span):
        overlap = min(gold[2], p[2]) - max(gold[1], p[1])
        return ((p[1], p[2]) == (gold[1], gold[2]), p[0] == gold[0], overlap, -p[1])

    return max(candidates, key=key)


def _classify(gold: Span, pred: Span | None) -> str:
    if pred is None:
        return "missed"
    same_span = (pred[1], pred[2]) == (gold[1], gold[2])
    if same_span:
        return "exact" if pred[0] == gold[0] else "type"
    return "boundary" if pred[0] == gold[0] else "boundary_type"


def error_analysis(
    gold: Sequence[Sequence[str]],
    pred: Sequence[Sequence[str]],
    scheme: str = "IOB2",
    words: Sequence[Sequence[str]] | None = None,
    max_examples: int = 5,
    top_confusions: int = 10,
) -> dict:
    """Compare gold and predicted entity spans sentence by sentence (see the module docstring).

    Returns a JSON-ready dict:
    ``counts`` ({kind: n} for `ERROR_KINDS`), ``n_gold``, ``n_pred`` (entities), ``n_sentences``,
    ``top_confusions`` ([{gold, pred, count}] of type errors, most frequent first),
    ``confusion_matrix`` ({gold_labels, pred_labels, counts}: rows gold types + "none (spurious)",
    columns predicted types + "boundary (same type)" + "none (missed)"; each gold entity is paired with its
    best overlapping prediction: the diagonal holds exact matches only, a same-type prediction with another
    span counts in the boundary column, another type in that type's column whatever the span) and ``examples``
    ({kind: up to `max_examples` sentences: sentence index, words, gold, pred, gold_span, pred_span},
    for every kind but exact).
    """
    scheme = normalize_scheme(scheme)
    if len(gold) != len(pred):
        raise ValueError(f"gold has {len(gold)} sentences but pred has {len(pred)}")
    counts = Counter({kind: 0 for kind in ERROR_KINDS})
    confusions: Counter = Counter()
    pairs: Counter = Counter()  # (gold type or NONE_GOLD, pred type or NONE_PRED)
    examples: dict[str, list[dict]] = {kind: [] for kind in ERROR_KINDS if kind != "exact"}
    n_gold = n_pred = 0
    for i, (g_tags, p_tags) in enumerate(zip(gold, pred)):
        if len(g_tags) != len(p_tags):
            raise ValueError(f"sentence {i}: gold has {len(g_tags)} tags but pred has {len(p_tags)}")
        g_spans, p_spans = tags_to_spans(g_tags, scheme), tags_to_spans(p_tags, scheme)
        n_gold += len(g_spans)
        n_pred += len(p_spans)
        found: list[tuple[str, Span | None, Span | None]] = []
        for g in g_spans:
            p = _best_overlap(g, p_spans)
            kind = _classify(g, p)
            counts[kind] += 1
            pairs[(g[0], BOUNDARY if kind == "boundary" else p[0] if p else NONE_PRED)] += 1
            if kind == "type":
                confusions[(g[0], p[0])] += 1
            found.append((kind, g, p))
        for p in p_spans:
            if not any(_overlaps(g, p) for g in g_spans):
                counts["spurious"] += 1
                pairs[(NONE_GOLD, p[0])] += 1
                found.append(("spurious", None, p))
        seen_kinds = set()
        for kind, g, p in found:
            if kind == "exact" or kind in seen_kinds or len(examples[kind]) >= max_examples:
                continue
            seen_kinds.add(kind)  # one example per kind and sentence
            examples[kind].append(
                {
                    "sentence": i,
                    "words": list(words[i]) if words is not None else None,
                    "gold": list(g_tags),
                    "pred": list(p_tags),
                    "gold_span": list(g) if g else None,
                    "pred_span": list(p) if p else None,
                }
            )
    types = sorted({g for g, _ in pairs if g != NONE_GOLD} | {p for _, p in pairs if p not in (NONE_PRED, BOUNDARY)})
    gold_labels, pred_labels = types + [NONE_GOLD], types + [BOUNDARY, NONE_PRED]
    matrix = [[pairs.get((g, p), 0) for p in pred_labels] for g in gold_labels]
    return {
        "counts": dict(counts),
        "n_gold": n_gold,
        "n_pred": n_pred,
        "n_sentences": len(gold),
        "top_confusions": [
            {"gold": g, "pred": p, "count": c}
            for (g, p), c in sorted(confusions.items(), key=lambda kv: (-kv[1], kv[0]))[:top_confusions]
        ],
        "confusion_matrix": {"gold_labels": gold_labels, "pred_labels": pred_labels, "counts": matrix},
        "examples": examples,
    }


def format_error_summary(analysis: dict) -> str:
    """A few lines for report.txt: the counts of every kind and the top type confusions."""
    counts, n_gold = analysis["counts"], analysis["n_gold"]
    lines = [
        f"gold entities: {n_gold}   predicted entities: {analysis['n_pred']}   sentences: {analysis['n_sentences']}"
    ]
    for kind in ERROR_KINDS:
        share = f"{counts[kind] / n_gold:7.2%} of gold" if n_gold and kind != "spurious" else ""
        if kind == "spurious" and analysis["n_pred"]:
            share = f"{counts[kind] / analysis['n_pred']:7.2%} of predicted"
        lines.append(f"{kind:>14}  {counts[kind]:>7}  {share}")
    if analysis["top_confusions"]:
        lines.append("top type confusions (same span, gold -> predicted):")
        lines += [f"  {c['gold']} -> {c['pred']}: {c['count']}" for c in analysis["top_confusions"]]
    return "\n".join(lines) + "\n"


def format_mode_table(default: dict, strict: dict | None, digits: int = 4) -> str:
    """One entity-level table, default-mode and (when given) strict-mode scores side by side, per type."""
    types = sorted(set(default["per_type"]) | set(strict["per_type"] if strict else ()))
    modes = [("default", default)] + ([("strict", strict)] if strict else [])
    width = max([len(t) for t in types] + [len("token accuracy")])
    col = max(len("precision"), digits + 2)
    empty = {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    header = " " * width + "".join(
        f"  {f'{name} ' + '-' * (3 * (col + 2) - len(name) - 3):<{3 * (col + 2) - 2}}" for name, _ in modes
    )
    sub = " " * width + "".join(f"  {h:>{col}}" for _ in modes for h in ("precision", "recall", "f1-score"))
    lines = [header, sub + f"  {'support':>{col}}", ""]

    def row(name, cells, support):
        text = "".join(f"  {x:>{col}.{digits}f}" if x is not None else "  " + " " * col for x in cells)
        return f"{name:>{width}}{text}  {support:>{col}}"

    for t in types:
        cells = [m["per_type"].get(t, empty)[k] for _, m in modes for k in ("precision", "recall", "f1")]
        lines.append(row(t, cells, default["per_type"].get(t, empty)["support"]))
    total = sum(r["support"] for r in default["per_type"].values())
    lines.append("")
    lines.append(row("micro avg", [m[k] for _, m in modes for k in ("precision", "recall", "f1")], total))
    lines.append(row("macro f1", [x for _, m in modes for x in (None, None, m["macro_f1"])], total))
    lines.append(row("token accuracy", [x for _, m in modes for x in (None, None, m["accuracy"])], default["n_words"]))
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- bootstrap


def _sentence_entities(gold, pred, scheme: str, strict: bool) -> list[tuple[set, set]]:
    """Per sentence: (gold entities, predicted entities) as {(type, start, end)}, as seqeval reads them."""
    if not strict:
        return [(set(tags_to_spans(g, scheme)), set(tags_to_spans(p, scheme))) for g, p in zip(gold, pred)]
    from seqeval.scheme import IOB2, IOBES, Entities

    from nertune.evaluation.metrics import _normalise  # L/U -> E/S, exactly as entity_metrics scores

    if scheme == "IOB1":
        raise ValueError("strict mode needs IOB2 or BIOES tags; convert IOB1 tags to IOB2 first")
    seqeval_scheme = IOB2 if scheme == "IOB2" else IOBES
    g_ents = Entities(_normalise(gold, "gold"), seqeval_scheme, suffix=False).entities
    p_ents = Entities(_normalise(pred, "predicted"), seqeval_scheme, suffix=False).entities
    return [({e.to_tuple()[1:] for e in g}, {e.to_tuple()[1:] for e in p}) for g, p in zip(g_ents, p_ents)]


def _count_array(entities: list[tuple[set, set]], types: list[str]) -> np.ndarray:
    """(sentences, 1 + types, 3): correct, predicted and gold entities per sentence, all types first, then each."""
    column = {t: i + 1 for i, t in enumerate(types)}
    counts = np.zeros((len(entities), 1 + len(types), 3), dtype=np.int64)
    for s, (g, p) in enumerate(entities):
        for k, group in enumerate((g & p, p, g)):
            counts[s, 0, k] = len(group)
            for entity in group:
                counts[s, column[entity[0]], k] += 1
    return counts


def _f1(tp, n_pred, n_gold):
    denominator = n_pred + n_gold
    return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)


def _ratio(tp, n):
    return np.where(n > 0, tp / np.maximum(n, 1), 0.0)


def bootstrap_f1_ci(
    gold: Sequence[Sequence[str]],
    pred: Sequence[Sequence[str]],
    scheme: str = "IOB2",
    n: int = 1000,
    seed: int = 0,
    strict: bool = False,
    confidence: float = 0.95,
) -> dict:
    """Percentile bootstrap CI of the entity-level micro F1 and of each type's precision, recall and F1,
    resampling SENTENCES with replacement.

    Each of the `n` resamples draws as many sentences as the split has (numpy, seeded: the same inputs
    and seed give the same interval). F1 = 2·correct / (predicted + gold) over the resample, the formula
    seqeval's micro average reduces to; every type is scored on the same resamples. Returns ``{"f1", "ci":
    [lo, hi], "n_resamples", "seed", "confidence", "per_type": {type: {"precision", "recall", "f1",
    "precision_ci", "recall_ci", "f1_ci", "support"}}}``; the point estimates are those of the full split.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    scheme = normalize_scheme(scheme)
    if len(gold) != len(pred):
        raise ValueError(f"gold has {len(gold)} sentences but pred has {len(pred)}")
    entities = _sentence_entities(gold, pred, scheme, strict)
    types = sorted({e[0] for g, p in entities for e in g | p})
    counts = _count_array(entities, types)  # (sentences, 1 + types, 3)
    n_sentences = len(counts)
    total = counts.sum(axis=0)
    result = {"f1": float(_f1(*total[0])), "n_resamples": n, "seed": seed, "confidence": confidence}
    if n_sentences == 0:
        return {**result, "ci": [0.0, 0.0], "per_type": {}}
    rng = np.random.default_rng(seed)
    totals = np.empty((n, *total.shape), dtype=np.int64)
    flat = counts.reshape(n_sentences, -1)
    chunk = max(1, 2_000_000 // n_sentences)  # resamples per batch: bounded memory on large splits
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        idx = rng.integers(0, n_sentences, size=(stop - start, n_sentences))
        # How often each sentence was drawn, then one matrix product sums every column of every resample.
        offsets = (np.arange(stop - start) * n_sentences)[:, None]
        drawn = np.bincount((idx + offsets).ravel(), minlength=(stop - start) * n_sentences)
        totals[start:stop] = (drawn.reshape(stop - start, n_sentences) @ flat).reshape(stop - start, *total.shape)
    alpha = (1 - confidence) / 2

    def interval(scores: np.ndarray) -> list[float]:
        return [float(x) for x in np.quantile(scores, [alpha, 1 - alpha])]

    tp, n_pred, n_gold = totals[..., 0], totals[..., 1], totals[..., 2]
    f1, precision, recall = _f1(tp, n_pred, n_gold), _ratio(tp, n_pred), _ratio(tp, n_gold)
    result["ci"] = interval(f1[:, 0])
    result["per_type"] = {
        t: {
            "precision": float(_ratio(total[c, 0], total[c, 1])),
            "recall": float(_ratio(total[c, 0], total[c, 2])),
            "f1": float(_f1(*total[c])),
            "precision_ci": interval(precision[:, c]),
            "recall_ci": interval(recall[:, c]),
            "f1_ci": interval(f1[:, c]),
            "support": int(total[c, 2]),
        }
        for c, t in enumerate(types, start=1)
    }
    return result


def sentence_error_counts(
    gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], scheme: str = "IOB2"
) -> list[int]:
    """Per sentence: gold entities not predicted exactly plus predicted entities not in gold (FN + FP)."""
    scheme = normalize_scheme(scheme)
    return [len(g ^ p) for g, p in _sentence_entities(gold, pred, scheme, strict=False)]
