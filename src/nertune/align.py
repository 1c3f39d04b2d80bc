"""Sub-word tokenisation, label alignment, and windows for sentences longer than `max_length`.

Two promises hold here for every sentence:
- no word is lost: a word the tokenizer turns into nothing (a zero-width space, a control character)
  is encoded as the unknown token, and a sentence longer than `max_length` sub-tokens is cut into
  overlapping windows instead of being truncated;
- each word gets exactly one prediction: `merge_window_predictions` picks, for every word, the window
  in which it sits farthest from an edge (the most context on both sides).
"""

from __future__ import annotations

from collections.abc import Sequence

from .schemes import continuation_tag

IGNORE_INDEX = -100  # the label that CrossEntropyLoss (and so every HF model) ignores


def _clean_words(words: Sequence[str], unk_token: str | None, tokenizer) -> list[str]:
    """Replace words the tokenizer maps to no sub-token (they would silently vanish) by the unk token."""
    if not words:
        return []
    encoded = tokenizer(list(words), is_split_into_words=True, add_special_tokens=False)
    present = {w for w in encoded.word_ids() if w is not None}
    if len(present) == len(words):
        return list(words)
    replacement = unk_token or "[UNK]"
    return [w if i in present else replacement for i, w in enumerate(words)]


def _subtoken_counts(words: list[str], tokenizer) -> list[int]:
    encoded = tokenizer(words, is_split_into_words=True, add_special_tokens=False)
    counts = [0] * len(words)
    for w in encoded.word_ids():
        if w is not None:
            counts[w] += 1
    return counts


def plan_windows(counts: Sequence[int], budget: int, overlap: int) -> list[tuple[int, int]]:
    """Cut a sentence into word windows of at most `budget` sub-tokens sharing about `overlap` sub-tokens.

    Windows start and end at word boundaries. A single word longer than the budget gets a window of its
    own (its continuation sub-tokens are cut, its first one - the one that carries the label - is kept).
    """
    n = len(counts)
    if n == 0:
        return [(0, 0)]
    windows = []
    start = 0
    while True:
        end, used = start, 0
        while end < n and used + counts[end] <= budget:
            used += counts[end]
            end += 1
        if end == start:  # one word alone exceeds the budget
            end = start + 1
        windows.append((start, end))
        if end >= n:
            return windows
        # Step back from `end` while the shared part stays within `overlap` sub-tokens, but always move on.
        next_start, shared = end, 0
        while next_start - 1 > start and shared + counts[next_start - 1] <= overlap:
            next_start -= 1
            shared += counts[next_start]
        start = next_start


def encode_examples(
    tokens: Sequence[Sequence[str]],
    tokenizer,
    max_length: int,
    window_overlap: int = 32,
    label_ids: Sequence[Sequence[int]] | None = None,
    continuation_label_ids: Sequence[int] | None = None,
) -> dict[str, list]:
    """Tokenise sentences into model inputs, one row per window.

    Returns columns `input_ids`, `attention_mask` (and `token_type_ids` when the tokenizer makes them),
    `word_index` (per sub-token: the word index if it is the word's first sub-token, else -1),
    `example_index`, `word_start`, `word_end`, and `labels` when `label_ids` is given.
    `continuation_label_ids[label]` is the label of a word's later sub-tokens when all sub-tokens are
    labelled (B-X -> I-X); when it is None they get -100.
    """
    budget = max_length - tokenizer.num_special_tokens_to_add(pair=False)
    if budget < 1:
        raise ValueError(f"max_length={max_length} leaves no room for words after the special tokens")
    out: dict[str, list] = {"input_ids": [], "attention_mask": [], "word_index": [], "example_index": [],
                            "word_start": [], "word_end": []}
    if label_ids is not None:
        out["labels"] = []
    unk = getattr(tokenizer, "unk_token", None)
    # Fast path: one batched call; only sentences that are too long or lose a word take the slow path.
    batch = tokenizer([list(w) for w in tokens], is_split_into_words=True, add_special_tokens=True) if tokens else None
    for ex, words in enumerate(tokens):
        word_ids = batch.word_ids(ex)
        n_present = len({w for w in word_ids if w is not None})
        if n_present == len(words) and len(word_ids) <= max_length:
            _append_window(out, ex, 0, len(words), batch["input_ids"][ex], batch["attention_mask"][ex],
                           batch["token_type_ids"][ex] if "token_type_ids" in batch else None,
                           word_ids, label_ids, continuation_label_ids)
            continue
        words = _clean_words(words, unk, tokenizer)
        counts = _subtoken_counts(words, tokenizer)
        for word_start, word_end in plan_windows(counts, budget, window_overlap):
            # Truncation only ever bites a single word longer than the whole budget (see plan_windows).
            enc = tokenizer(words[word_start:word_end], is_split_into_words=True, truncation=True,
                            max_length=max_length)
            _append_window(out, ex, word_start, word_end, enc["input_ids"], enc["attention_mask"],
                           enc.get("token_type_ids"), enc.word_ids(), label_ids, continuation_label_ids)
    return out


def _append_window(out, ex, word_start, word_end, input_ids, attention_mask, token_type_ids, word_ids,
                   label_ids, continuation_label_ids) -> None:
    word_index, labels, previous = [], [], None
    for w in word_ids:
        if w is None:
            word_index.append(-1)
            labels.append(IGNORE_INDEX)
        elif w != previous:
            word_index.append(word_start + w)
            labels.append(label_ids[ex][word_start + w] if label_ids is not None else IGNORE_INDEX)
        else:
            word_index.append(-1)
            if label_ids is not None and continuation_label_ids is not None:
                labels.append(continuation_label_ids[label_ids[ex][word_start + w]])
            else:
                labels.append(IGNORE_INDEX)
        previous = w
    if [w for w in word_index if w >= 0] != list(range(word_start, word_end)):
        raise AssertionError(f"sentence {ex}: a word lost its first sub-token in window {word_start}:{word_end}")
    out["input_ids"].append(list(input_ids))
    out["attention_mask"].append(list(attention_mask))
    if token_type_ids is not None:
        out.setdefault("token_type_ids", []).append(list(token_type_ids))
    out["word_index"].append(word_index)
    out["example_index"].append(ex)
    out["word_start"].append(word_start)
    out["word_end"].append(word_end)
    if label_ids is not None:
        out["labels"].append(labels)


def merge_window_predictions(
    word_index: Sequence[Sequence[int]],
    example_index: Sequence[int],
    word_start: Sequence[int],
    word_end: Sequence[int],
    predictions: Sequence[Sequence],
    n_words: Sequence[int],
) -> list[list]:
    """Map per-sub-token predictions of every window back to exactly one prediction per word.

    `predictions[row][position]` is whatever the caller predicts at a sub-token (a label id, a score
    vector...). A word seen by several windows takes the window where it has the most context.
    Raises if any word of any sentence got no prediction.
    """
    merged: list[list] = [[None] * n for n in n_words]
    best_margin: list[list[int]] = [[-1] * n for n in n_words]
    for row, ex in enumerate(example_index):
        start, end = word_start[row], word_end[row]
        row_predictions = predictions[row]
        for position, w in enumerate(word_index[row]):
            if w < 0:
                continue
            margin = min(w - start, end - 1 - w)
            if margin > best_margin[ex][w]:
                best_margin[ex][w] = margin
                merged[ex][w] = row_predictions[position]
    for ex, margins in enumerate(best_margin):
        missing = [w for w, m in enumerate(margins) if m < 0]
        if missing:
            raise AssertionError(f"sentence {ex}: words {missing[:10]} got no prediction")
    return merged


def encode_split(
    dataset,
    tokenizer,
    max_length: int,
    window_overlap: int,
    label2id: dict[str, int] | None = None,
    label_all_subtokens: bool = False,
    sort_by_length: bool = False,
    scheme: str = "IOB2",
):
    """Encode a data split (columns `tokens`, `ner_tags`) into a `datasets.Dataset` of windows.

    With `sort_by_length` the rows are ordered by length so that sequential evaluation batches carry
    little padding; `example_index`/`word_index` still map every prediction back to its word.
    """
    import datasets

    tokens = dataset["tokens"]
    label_ids = continuation = None
    if label2id is not None:
        label_ids = []
        for i, tags in enumerate(dataset["ner_tags"]):
            try:
                label_ids.append([label2id[t] for t in tags])
            except KeyError as e:
                raise ValueError(f"sentence {i}: label {e.args[0]!r} is not in the label list {list(label2id)}") from None
        if label_all_subtokens:
            # A word's later sub-tokens continue its entity: B-X -> I-X, never a second B-.
            continuation = [label2id.get(continuation_tag(label, scheme), label2id[label]) for label in label2id]
    encoded = encode_examples(tokens, tokenizer, max_length, window_overlap, label_ids, continuation)
    encoded["length"] = [len(ids) for ids in encoded["input_ids"]]
    features = datasets.Dataset.from_dict(encoded)
    if sort_by_length:
        features = features.sort("length")
    return features

