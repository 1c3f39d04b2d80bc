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

import json
import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nertune.schemes import normalize_scheme, tags_to_spans

__all__ = [
    "ERROR_KINDS",
    "error_analysis",
    "bootstrap_f1_ci",
    "format_error_summary",
    "format_mode_table",
    "plot_confusion_matrix",
    "plot_learning_curves",
]

logger = logging.getLogger(__name__)

ERROR_KINDS = ("exact", "type", "boundary", "boundary_type", "missed", "spurious")
NONE_GOLD = "none (spurious)"  # confusion-matrix row: a prediction that overlaps no gold entity
NONE_PRED = "none (missed)"  # confusion-matrix column: a gold entity that no prediction overlaps

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
    columns predicted types + "none (missed)"; each gold entity is paired with its best overlapping
    prediction, so boundary errors of the right type sit on the diagonal) and ``examples``
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
            pairs[(g[0], p[0] if p else NONE_PRED)] += 1
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
    gold_types = sorted({g for g, _ in pairs if g != NONE_GOLD} | {p for _, p in pairs if p != NONE_PRED})
    pred_types = list(gold_types)
    gold_labels, pred_labels = gold_types + [NONE_GOLD], pred_types + [NONE_PRED]
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


def _sentence_counts(gold, pred, scheme: str, strict: bool) -> np.ndarray:
    """Per sentence: (correct entities, predicted entities, gold entities), as seqeval counts them."""
    if not strict:
        rows = []
        for g_tags, p_tags in zip(gold, pred):
            g, p = set(tags_to_spans(g_tags, scheme)), set(tags_to_spans(p_tags, scheme))
            rows.append((len(g & p), len(p), len(g)))
        return np.array(rows, dtype=np.int64).reshape(-1, 3)
    from seqeval.scheme import IOB2, IOBES, Entities

    from nertune.evaluation.metrics import _normalise  # L/U -> E/S, exactly as entity_metrics scores

    if scheme == "IOB1":
        raise ValueError("strict mode needs IOB2 or BIOES tags; convert IOB1 tags to IOB2 first")
    seqeval_scheme = IOB2 if scheme == "IOB2" else IOBES
    g_ents = Entities(_normalise(gold, "gold"), seqeval_scheme, suffix=False).entities
    p_ents = Entities(_normalise(pred, "predicted"), seqeval_scheme, suffix=False).entities
    rows = []
    for g, p in zip(g_ents, p_ents):
        g, p = {e.to_tuple() for e in g}, {e.to_tuple() for e in p}
        rows.append((len(g & p), len(p), len(g)))
    return np.array(rows, dtype=np.int64).reshape(-1, 3)


def _f1(tp, n_pred, n_gold):
    denominator = n_pred + n_gold
    return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)


def bootstrap_f1_ci(
    gold: Sequence[Sequence[str]],
    pred: Sequence[Sequence[str]],
    scheme: str = "IOB2",
    n: int = 1000,
    seed: int = 0,
    strict: bool = False,
    confidence: float = 0.95,
) -> dict:
    """Percentile bootstrap CI of the entity-level micro F1, resampling SENTENCES with replacement.

    Each of the `n` resamples draws as many sentences as the split has (numpy, seeded: the same inputs
    and seed give the same interval). Micro F1 = 2·correct / (predicted + gold) over the resample, the
    formula seqeval's micro average reduces to. Returns ``{"f1", "ci": [lo, hi], "n_resamples", "seed",
    "confidence"}``; ``f1`` is the point estimate on the full split.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    scheme = normalize_scheme(scheme)
    if len(gold) != len(pred):
        raise ValueError(f"gold has {len(gold)} sentences but pred has {len(pred)}")
    counts = _sentence_counts(gold, pred, scheme, strict)
    point = float(_f1(*counts.sum(axis=0)))
    n_sentences = len(counts)
    if n_sentences == 0:
        return {"f1": 0.0, "ci": [0.0, 0.0], "n_resamples": n, "seed": seed, "confidence": confidence}
    rng = np.random.default_rng(seed)
    scores = np.empty(n)
    chunk = max(1, 2_000_000 // n_sentences)  # resamples per batch: bounded memory on large splits
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        idx = rng.integers(0, n_sentences, size=(stop - start, n_sentences))
        totals = counts[idx].sum(axis=1)  # (resamples, 3)
        scores[start:stop] = _f1(totals[:, 0], totals[:, 1], totals[:, 2])
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(scores, [alpha, 1 - alpha])
    return {"f1": point, "ci": [float(lo), float(hi)], "n_resamples": n, "seed": seed, "confidence": confidence}


# --------------------------------------------------------------------------- plots


def _pyplot():
    """matplotlib.pyplot on the headless Agg backend, or None (logged) when matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        logger.warning("matplotlib is not installed: skipping the plots (pip install 'nertune[report]')")
        return None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_confusion_matrix(
    matrix: dict, out_png: str | Path, title: str = "entity types: gold vs predicted"
) -> Path | None:
    """Draw `error_analysis(...)["confusion_matrix"]` as a heat map with counts; None if matplotlib is missing."""
    plt = _pyplot()
    if plt is None:
        return None
    counts = np.array(matrix["counts"], dtype=float).reshape(len(matrix["gold_labels"]), len(matrix["pred_labels"]))
    n_rows, n_cols = counts.shape
    fig, ax = plt.subplots(figsize=(1.2 + 0.8 * n_cols, 1.0 + 0.7 * n_rows), dpi=100)
    try:
        image = ax.imshow(counts, cmap="Blues")
        ax.set_xticks(range(n_cols), matrix["pred_labels"], rotation=45, ha="right")
        ax.set_yticks(range(n_rows), matrix["gold_labels"])
        ax.set_xlabel("predicted type")
        ax.set_ylabel("gold type")
        ax.set_title(title)
        threshold = counts.max() / 2 if counts.size else 0
        for r in range(n_rows):
            for c in range(n_cols):
                ax.text(
                    c,
                    r,
                    f"{int(counts[r, c])}",
                    ha="center",
                    va="center",
                    color="white" if counts[r, c] > threshold else "black",
                    fontsize=8,
                )
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        fig.tight_layout()
        fig.savefig(out_png, format="png")
    finally:
        plt.close(fig)
    return Path(out_png)


def plot_learning_curves(trainer_state_path: str | Path, out_png: str | Path) -> Path | None:
    """Training loss and validation F1 (and loss) per step from a Trainer's `trainer_state.json`.

    Returns the PNG path, or None (logged) when the file is missing, has nothing to plot, or matplotlib
    is not installed.
    """
    path = Path(trainer_state_path)
    if not path.is_file():
        logger.info("no %s: skipping the learning curves", path)
        return None
    history = json.loads(path.read_text(encoding="utf-8")).get("log_history", [])
    train = [(h["step"], h["loss"]) for h in history if "loss" in h and "step" in h]
    eval_f1 = [(h["step"], h["eval_f1"]) for h in history if "eval_f1" in h and "step" in h]
    eval_loss = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h and "step" in h]
    if not (train or eval_f1 or eval_loss):
        logger.info("%s has no logged loss or F1: skipping the learning curves", path)
        return None
    plt = _pyplot()
    if plt is None:
        return None
    fig, (ax_loss, ax_f1) = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    try:
        if train:
            ax_loss.plot(*zip(*train), marker="o", markersize=3, label="training loss")
        if eval_loss:
            ax_loss.plot(*zip(*eval_loss), marker="s", markersize=3, label="validation loss")
        ax_loss.set_xlabel("step")
        ax_loss.set_ylabel("loss")
        ax_loss.set_title("loss")
        ax_loss.legend(loc="best")
        ax_loss.grid(alpha=0.3)
        if eval_f1:
            ax_f1.plot(*zip(*eval_f1), marker="o", markersize=3, color="tab:green", label="validation entity F1")
            ax_f1.set_ylim(0, 1.02)
            ax_f1.legend(loc="lower right")
            # Epochs on a second axis when the log has them.
            epochs = {h["step"]: h["epoch"] for h in history if "epoch" in h and "eval_f1" in h}
            if epochs:
                ax_f1.set_title(
                    "validation F1 (epochs "
                    + ", ".join(f"{e:g}" for e in sorted(epochs.values())[:8])
                    + (" ..." if len(epochs) > 8 else "")
                    + ")",
                    fontsize=9,
                )
        else:
            ax_f1.text(
                0.5,
                0.5,
                "no validation F1 logged\n(eval_strategy=no)",
                ha="center",
                va="center",
                transform=ax_f1.transAxes,
            )
            ax_f1.set_title("validation F1")
        ax_f1.set_xlabel("step")
        ax_f1.set_ylabel("entity F1")
        ax_f1.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out_png, format="png")
    finally:
        plt.close(fig)
    return Path(out_png)
