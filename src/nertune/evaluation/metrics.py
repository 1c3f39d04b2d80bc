"""Entity-level (seqeval, run locally) and token-level scores.

The `evaluate` library's seqeval metric is not used: it fetches its script from the Hub, which we cannot reach.
All functions take word-level tag sequences (one tag per word) and return plain
Python numbers so results can be written as JSON.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

from seqeval.metrics import classification_report
from seqeval.scheme import IOB2, IOBES
from sklearn.exceptions import UndefinedMetricWarning  # seqeval depends on scikit-learn
from sklearn.metrics import accuracy_score
from sklearn.metrics import classification_report as sklearn_classification_report

from nertune.schemes import InvalidTagError, normalize_scheme, parse_tag

__all__ = ["entity_metrics", "format_entity_report", "gold_spans", "span_metrics", "token_metrics", "token_report"]

_AVERAGE_ROWS = ("micro avg", "macro avg", "weighted avg")


def _check_lengths(true: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> None:
    """Raise ValueError unless true and pred align sentence by sentence, word by word."""
    if len(true) != len(pred):
        raise ValueError(
            f"true has {len(true)} sentences but pred has {len(pred)}; sentences were lost or added somewhere"
        )
    for i, (t, p) in enumerate(zip(true, pred)):
        if len(t) != len(p):
            raise ValueError(
                f"sentence {i}: true has {len(t)} tags but pred has {len(p)}; "
                "words were lost or added somewhere (e.g. truncation or sub-token alignment)"
            )


def _normalise(sentences: Sequence[Sequence[str]], which: str) -> list[list[str]]:
    """Check every tag and rewrite L-/U-/M-/W- as E-/S-/I-/S- (seqeval only knows IOB2 and IOBES)."""
    out = []
    for i, sentence in enumerate(sentences):
        row = []
        for j, tag in enumerate(sentence):
            try:
                prefix, type_ = parse_tag(tag)
            except InvalidTagError as err:
                raise InvalidTagError(f"{which} sentence {i}, position {j}: {err}", tag=tag, position=j) from None
            row.append("O" if type_ is None else f"{prefix}-{type_}")
        out.append(row)  # seqeval needs lists, not tuples, to see sentence boundaries
    return out


def _num(value: object) -> float:
    """A plain float; NaN (seqeval's macro average over zero types) becomes 0.0."""
    value = float(value)
    return 0.0 if value != value else value


def entity_metrics(
    true: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], scheme: str = "IOB2", strict: bool = False
) -> dict:
    """Entity-level precision/recall/F1 with seqeval, plus token accuracy.

    Default mode is seqeval's default (conlleval-compatible: an I-X after O
    still counts as an entity). ``strict=True`` uses seqeval's strict mode, in
    which only entities valid in ``scheme`` (IOB2, or BIOES/BILOU/BMES/BMEWO,
    all scored as IOBES) count.

    Returns ``precision``, ``recall``, ``f1`` (micro), ``macro_f1`` (unweighted
    mean over types in gold or pred), ``accuracy`` (token), ``per_type``
    ({type: precision, recall, f1, support}), ``n_sentences`` and ``n_words``.
    """
    scheme = normalize_scheme(scheme)
    if strict and scheme == "IOB1":
        raise ValueError("strict mode needs IOB2 or BIOES tags; convert IOB1 tags to IOB2 first")
    _check_lengths(true, pred)
    y_true = _normalise(true, "gold")
    y_pred = _normalise(pred, "predicted")

    options: dict = {"output_dict": True, "zero_division": 0}
    if strict:
        # L/U/M/W were rewritten as E/S/I/S above, so BILOU, BMES and BMEWO are scored as IOBES.
        options.update(mode="strict", scheme=IOB2 if scheme == "IOB2" else IOBES)
    n_words = sum(len(sentence) for sentence in y_true)
    if n_words == 0:
        # seqeval rejects an empty corpus; there is simply nothing to score.
        zeros = {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 0}
        report = {"micro avg": zeros, "macro avg": zeros}
    else:
        with warnings.catch_warnings():
            # No gold or no predicted entities is a legitimate case, scored 0.
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            report = classification_report(y_true, y_pred, **options)

    per_type = {
        name: {
            "precision": _num(row["precision"]),
            "recall": _num(row["recall"]),
            "f1": _num(row["f1-score"]),
            "support": int(row["support"]),
        }
        for name, row in sorted(report.items())
        if name not in _AVERAGE_ROWS
    }
    n_correct = sum(t == p for ts, ps in zip(y_true, y_pred) for t, p in zip(ts, ps))
    micro = report["micro avg"]
    return {
        "precision": _num(micro["precision"]),
        "recall": _num(micro["recall"]),
        "f1": _num(micro["f1-score"]),
        "macro_f1": _num(report["macro avg"]["f1-score"]) if per_type else 0.0,
        "accuracy": n_correct / n_words if n_words else 0.0,
        "per_type": per_type,
        "n_sentences": len(y_true),
        "n_words": n_words,
    }


Span = tuple[str, int, int]  # (type, first word, end word exclusive)


def gold_spans(dataset, scheme: str) -> list[list[Span]]:
    """Every sentence's gold entities of every level: the `spans` column of nested data, else the tags' spans."""
    from nertune.schemes import tags_to_spans

    if "spans" in dataset.column_names:
        return [[(s["type"], s["start"], s["end"]) for s in spans or []] for spans in dataset["spans"]]
    return [tags_to_spans(tags, scheme) for tags in dataset["ner_tags"]]


def _prf(correct: int, n_predicted: int, n_gold: int) -> tuple[float, float, float]:
    precision = correct / n_predicted if n_predicted else 0.0
    recall = correct / n_gold if n_gold else 0.0
    return precision, recall, (2 * precision * recall / (precision + recall) if precision + recall else 0.0)


def span_metrics(true: Sequence[Sequence[Span]], pred: Sequence[Sequence[Span]]) -> dict:
    """Exact-match scores of entity sets `(type, start, end)` per sentence, nested entities counted as any
    other: ``precision``, ``recall``, ``f1`` (micro), ``macro_f1`` (mean over the types in gold or pred),
    ``per_type`` ({type: precision, recall, f1, support}), ``n_gold``, ``n_predicted``, ``n_nested_gold``
    (gold entities inside another one)."""
    if len(true) != len(pred):
        raise ValueError(f"true has {len(true)} sentences but pred has {len(pred)}")
    counts: dict[str, list[int]] = {}  # type -> [correct, predicted, gold]
    nested = 0
    for gold_sentence, predicted_sentence in zip(true, pred):
        gold_set = {tuple(s[:3]) for s in gold_sentence}
        predicted_set = {tuple(s[:3]) for s in predicted_sentence}
        nested += sum(any(o != g and o[1] <= g[1] and g[2] <= o[2] for o in gold_set) for g in gold_set)
        for type_, *_ in gold_set | predicted_set:
            counts.setdefault(type_, [0, 0, 0])
        for span in gold_set & predicted_set:
            counts[span[0]][0] += 1
        for span in predicted_set:
            counts[span[0]][1] += 1
        for span in gold_set:
            counts[span[0]][2] += 1
    per_type = {}
    for type_, (correct, n_predicted, n_gold) in sorted(counts.items()):
        precision, recall, f1 = _prf(correct, n_predicted, n_gold)
        per_type[type_] = {"precision": precision, "recall": recall, "f1": f1, "support": n_gold}
    totals = [sum(c[i] for c in counts.values()) for i in range(3)]
    precision, recall, f1 = _prf(*totals)
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "macro_f1": sum(t["f1"] for t in per_type.values()) / len(per_type) if per_type else 0.0,
        "per_type": per_type,
        "n_gold": totals[2],
        "n_predicted": totals[1],
        "n_nested_gold": nested,
    }


Row = tuple[str, float | None, float | None, float, int]


def _table(rows: list[Row | None], digits: int) -> str:
    """Fixed-width table like seqeval's; ``None`` is a blank line, a None score an empty cell."""
    width = max([len(row[0]) for row in rows if row] + [len("weighted avg")])
    col = max(len("precision"), digits + 2)
    header = ["precision", "recall", "f1-score", "support"]
    lines = [" " * width + "".join(f"  {h:>{col}}" for h in header), ""]
    for row in rows:
        if row is None:
            lines.append("")
            continue
        name, *scores, support = row
        cells = "".join(f"  {x:>{col}.{digits}f}" if x is not None else "  " + " " * col for x in scores)
        lines.append(f"{name:>{width}}{cells}  {support:>{col}}")
    return "\n".join(lines) + "\n"


def format_entity_report(metrics: dict, digits: int = 4) -> str:
    """Render ``entity_metrics`` output as a seqeval-style fixed-width table."""
    per_type = metrics["per_type"]
    total = sum(row["support"] for row in per_type.values())
    rows: list[Row | None] = [
        (name, r["precision"], r["recall"], r["f1"], r["support"]) for name, r in per_type.items()
    ]
    n_types = len(per_type) or 1
    macro_p = sum(r["precision"] for r in per_type.values()) / n_types
    macro_r = sum(r["recall"] for r in per_type.values()) / n_types
    if rows:
        rows.append(None)
    rows += [
        ("micro avg", metrics["precision"], metrics["recall"], metrics["f1"], total),
        ("macro avg", macro_p, macro_r, metrics["macro_f1"], total),
        None,
        ("token accuracy", None, None, metrics["accuracy"], metrics["n_words"]),
    ]
    return _table(rows, digits)


_PREFIX_ORDER = "BIMELSUW"  # scheme order: B, I, E, S (BIOES); B, I, L, U (BILOU); B, M, E, S/W (BMES/BMEWO)


def _label_key(label: str) -> tuple:
    """Sort "O" first, then by entity type, then by prefix; odd labels last."""
    try:
        _, type_ = parse_tag(label)
    except InvalidTagError:
        return (2, str(label), 0)
    if type_ is None:
        return (0, "", 0)
    return (1, type_, _PREFIX_ORDER.index(label[0]))


def _flat(true: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], labels: list[str] | None):
    _check_lengths(true, pred)
    flat_true = [t for tags in true for t in tags]
    flat_pred = [p for tags in pred for p in tags]
    if labels is None:
        labels = sorted(set(flat_true) | set(flat_pred), key=_label_key)
    return flat_true, flat_pred, labels


def token_metrics(
    true: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], labels: list[str] | None = None
) -> dict:
    """Per-label token-level scores (each tag such as ``B-PER`` is its own class), by scikit-learn's
    ``classification_report``.

    Returns ``accuracy``, ``n_words``, ``per_label`` ({label: precision,
    recall, f1, support}), ``macro_avg`` and ``weighted_avg`` (over the labels
    reported: ``labels`` if given, else every label in true or pred).
    """
    flat_true, flat_pred, labels = _flat(true, pred, labels)
    if not flat_true or not labels:
        empty = {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
        per_label = {label: dict(empty) for label in labels}
        return {"accuracy": 0.0, "n_words": 0, "per_label": per_label, "macro_avg": empty, "weighted_avg": empty}
    report = sklearn_classification_report(flat_true, flat_pred, labels=labels, output_dict=True, zero_division=0)

    def scores(row: dict) -> dict:
        return {
            "precision": float(row["precision"]),
            "recall": float(row["recall"]),
            "f1": float(row["f1-score"]),
            "support": int(row["support"]),
        }

    return {
        "accuracy": float(accuracy_score(flat_true, flat_pred)),
        "n_words": len(flat_true),
        "per_label": {label: scores(report[label]) for label in labels},
        "macro_avg": scores(report["macro avg"]),
        "weighted_avg": scores(report["weighted avg"]),
    }


def token_report(
    true: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], labels: list[str] | None = None, digits: int = 4
) -> str:
    """The classic token-level table: scikit-learn's ``classification_report``, labels in scheme order."""
    flat_true, flat_pred, labels = _flat(true, pred, labels)
    if not flat_true or not labels:
        return "no tokens\n"
    return sklearn_classification_report(flat_true, flat_pred, labels=labels, digits=digits, zero_division=0)
