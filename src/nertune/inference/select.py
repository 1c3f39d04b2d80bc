"""`nertune select`: which unlabelled sentences to annotate next (active learning).

Every record of a pool (any `nertune predict` input: text lines, JSONL, CoNLL) is predicted and scored by
`run_prediction`'s streamed, resumable machinery into `<output stem>.scored.jsonl` beside the output (one
line per record: the model's entities as pre-annotations and the record's `score`); the selection then
reads that file once, keeping only the candidates, and writes the `count` chosen records as JSONL, most
informative first (`unit="document"`: whole documents, ranked by their words' mean uncertainty).

Scores are uncertainties of the model's per-word posteriors (`Head.word_posteriors`: softmax for the linear
head, CRF marginals for the CRF head), averaged over the sentence's words so long sentences do not win by
length alone:

- `least-confidence`: 1 - the word's highest posterior;
- `margin`: 1 - (highest - second highest posterior).

Strategies: `uncertainty` (the highest scores), `random` (a seeded uniform draw: the control), `diverse`
(the highest scores, skipping a sentence whose character n-gram Jaccard similarity with one already chosen
is `max_similarity` or more, so near-duplicates are not all sent to annotators).
"""

from __future__ import annotations

import heapq
import json
import logging
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from nertune.data import InputRecord
from nertune.errors import RequestError
from nertune.inference.files import _predict_records, run_prediction
from nertune.inference.predictor import NerPredictor

logger = logging.getLogger(__name__)

STRATEGIES = ("uncertainty", "random", "diverse")
MEASURES = ("least-confidence", "margin")
UNITS = ("sentence", "document")
SHINGLE_SIZE = 3  # characters per n-gram of the near-duplicate test
DIVERSE_CANDIDATES = 10  # `diverse` looks at this many times `count` of the most uncertain records


def sentence_uncertainty(posteriors: torch.Tensor, measure: str = "least-confidence") -> float:
    """The mean per-word uncertainty of one sentence's (words, labels) posteriors; 0.0 for no words."""
    if posteriors.shape[0] == 0:
        return 0.0
    if measure == "least-confidence":
        per_word = 1.0 - posteriors.max(dim=-1).values
    elif measure == "margin":
        top = posteriors.topk(min(2, posteriors.shape[-1]), dim=-1).values
        second = top[:, 1] if top.shape[-1] > 1 else torch.zeros_like(top[:, 0])
        per_word = 1.0 - (top[:, 0] - second)
    else:
        raise RequestError(f"unknown uncertainty measure {measure!r}; one of {MEASURES}")
    return float(per_word.mean())


def score_records(predictor: NerPredictor, records: list[InputRecord], measure: str) -> list[dict[str, Any]]:
    """`run_prediction`'s results of one chunk, each with the record's `score` and its text or tokens."""
    results = _predict_records(predictor, records)
    words = [result["words"] for result in results]
    posteriors = predictor.head.word_posteriors(predictor.word_logits(words, [r.document_id for r in records]))
    scored = []
    for record, result, sentence in zip(records, results, posteriors):
        source = {"text": record.text} if record.tokens is None else {"tokens": list(record.tokens)}
        document = {"document_id": record.document_id} if record.document_id else {}
        scored.append({**source, **document, **result, "score": round(sentence_uncertainty(sentence, measure), 6)})
    return scored


def shingles(text: str, size: int = SHINGLE_SIZE) -> frozenset[str]:
    """The character n-grams of a text, lowercased with runs of spaces collapsed (a short text: itself)."""
    text = " ".join(text.lower().split())
    if len(text) <= size:
        return frozenset([text])
    return frozenset(text[i : i + size] for i in range(len(text) - size + 1))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    union = len(a | b)
    return len(a & b) / union if union else 1.0


def _record_text(record: dict[str, Any]) -> str:
    return record["text"] if "text" in record else " ".join(record.get("tokens") or record.get("words") or [])


def _scored_lines(path: Path) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """(index, line, record) of every scored record with words: an empty one has nothing to annotate."""
    with open(path, encoding="utf-8") as f:
        for index, line in enumerate(f):
            record = json.loads(line) if line.strip() else None
            if record and record["words"]:
                yield index, line, record


def choose(
    scored_path: str | Path, count: int, strategy: str = "uncertainty", seed: int = 0, max_similarity: float = 0.7
) -> list[dict[str, Any]]:
    """The `count` records of a scored file the strategy picks, in the order picked; streamed, keeping only
    the candidates in memory. Ties in score go to the earlier record; records without words are never picked."""
    lines = _scored_lines(Path(scored_path))
    if strategy == "random":
        rng = random.Random(seed)
        picked = heapq.nlargest(count, ((rng.random(), -i, line) for i, line, _ in lines))
        return [json.loads(line) for _, _, line in picked]
    keep = count * DIVERSE_CANDIDATES if strategy == "diverse" else count
    ranked = heapq.nlargest(keep, ((record["score"], -i, line) for i, line, record in lines))
    records = [json.loads(line) for _, _, line in ranked]
    if strategy == "uncertainty":
        return records
    chosen: list[dict[str, Any]] = []
    chosen_shingles: list[frozenset[str]] = []
    for record in records:
        grams = shingles(_record_text(record))
        if all(jaccard(grams, other) < max_similarity for other in chosen_shingles):
            chosen.append(record)
            chosen_shingles.append(grams)
            if len(chosen) == count:
                break
    if len(chosen) < count:
        logger.warning(
            "diverse: %d of the %d most uncertain records are near-duplicates of others; selected %d, not %d",
            len(records) - len(chosen),
            len(records),
            len(chosen),
            count,
        )
    return chosen


def choose_documents(scored_path: str | Path, count: int, strategy: str = "uncertainty", seed: int = 0) -> list[dict]:
    """The `count` documents (records sharing a `document_id`; a record without one is its own) the strategy
    picks: every record of a picked document, in input order, with the document's `rank` and `document_score`
    (its words' mean uncertainty). Two streamed passes: scores per document, then the picked records."""
    if strategy == "diverse":
        raise RequestError("--unit document selects by the uncertainty or random strategy, not diverse")
    totals: dict[str, list[float]] = {}  # document -> [sum of word uncertainties, words, first record index]
    for i, _, record in _scored_lines(Path(scored_path)):
        words = len(record["words"])
        total = totals.setdefault(record.get("document_id") or f"\0{i}", [0.0, 0, i])
        total[0], total[1] = total[0] + record["score"] * words, total[1] + words
    if strategy == "random":
        rng = random.Random(seed)
        keys = {key: rng.random() for key in sorted(totals, key=lambda k: totals[k][2])}
    else:
        keys = {key: total[0] / total[1] for key, total in totals.items()}
    picked = heapq.nlargest(count, totals, key=lambda k: (keys[k], -totals[k][2]))
    rank = {key: r for r, key in enumerate(picked, 1)}
    chosen = []
    for i, _, record in _scored_lines(Path(scored_path)):
        key = record.get("document_id") or f"\0{i}"
        if key in rank:
            score = round(totals[key][0] / totals[key][1], 6)
            chosen.append({**record, "rank": rank[key], "document_score": score})
    return sorted(chosen, key=lambda record: record["rank"])  # stable: input order within a document


def scored_path_for(output_path: str | Path) -> Path:
    """Where `select_examples` keeps every pool record's score: `<output stem>.scored.jsonl` beside the output."""
    output_path = Path(output_path)
    return output_path.with_name(f"{output_path.stem}.scored.jsonl")


def select_examples(
    model_dir: str | Path,
    pool_path: str | Path,
    output_path: str | Path,
    count: int,
    strategy: str = "uncertainty",
    measure: str = "least-confidence",
    seed: int = 0,
    max_similarity: float = 0.7,
    resume: bool = False,
    unit: str = "sentence",
    **prediction: Any,
) -> list[dict[str, Any]]:
    """Score every record of `pool_path` with the model and write the `count` the strategy picks to
    `output_path` (JSONL: text or tokens, entities as pre-annotations, `score`, `rank`); returns them.

    `unit="document"` selects `count` whole documents (`choose_documents`).
    `resume` continues an interrupted scoring of the pool (`<output stem>.scored.jsonl`, see `run_prediction`);
    `prediction`: further `run_prediction` options (input_format, batch_size, device, documents, ...).
    """
    if strategy not in STRATEGIES:
        raise RequestError(f"unknown selection strategy {strategy!r}; one of {STRATEGIES}")
    if measure not in MEASURES:
        raise RequestError(f"unknown uncertainty measure {measure!r}; one of {MEASURES}")
    if unit not in UNITS:
        raise RequestError(f"unknown selection unit {unit!r}; one of {UNITS}")
    if count < 1:
        raise RequestError(f"--count must be at least 1, got {count}")
    if not 0.0 < max_similarity <= 1.0:
        raise RequestError(f"--max-similarity must be in (0, 1], got {max_similarity}")
    output_path, scored_path = Path(output_path), scored_path_for(output_path)
    if output_path.resolve() == Path(pool_path).resolve():
        raise RequestError(f"--output {output_path} would overwrite the pool")
    run_prediction(
        model_dir,
        pool_path,
        scored_path,
        output_format="jsonl",
        resume=resume,
        predict_records=lambda predictor, records: score_records(predictor, records, measure),
        **prediction,
    )
    if unit == "document":
        chosen = choose_documents(scored_path, count, strategy, seed)
    else:
        chosen = [
            {**r, "rank": rank} for rank, r in enumerate(choose(scored_path, count, strategy, seed, max_similarity), 1)
        ]
    with open(output_path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(record, ensure_ascii=False) + "\n" for record in chosen)
    logger.info("selected %d records (%s) of %s -> %s", len(chosen), strategy, pool_path, output_path)
    return chosen
