"""Sub-word tokenisation, label alignment, windows for sentences longer than `max_length`, and
document context (`context_size`: the neighbouring words of the same document, read but never labelled).

Two promises hold here for every sentence:
- no word is lost: a word the tokenizer turns into nothing (a zero-width space, a control character)
  is encoded as the unknown token, and a sentence longer than `max_length` sub-tokens is cut into
  overlapping windows instead of being truncated;
- each word gets exactly one prediction: `merge_window_predictions` picks, for every word, the window
  in which it sits farthest from an edge (the most context on both sides).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from nertune.data import DataError
from nertune.errors import RecipeError
from nertune.schemes import continuation_tag

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100  # the label that CrossEntropyLoss (and so every HF model) ignores


def _words_and_counts(sentences: list[list[str]], tokenizer) -> tuple[list[list[str]], list[list[int]]]:
    """Every sentence's words and the number of sub-tokens of each word, from one batched call.

    A word the tokenizer maps to no sub-token (it would silently vanish) is replaced by the unk token.
    """
    encoded = tokenizer(sentences, is_split_into_words=True, add_special_tokens=False)
    unk = getattr(tokenizer, "unk_token", None) or "[UNK]"
    all_words, all_counts = [], []
    for ex, words in enumerate(sentences):
        counts = [0] * len(words)
        for w in encoded.word_ids(ex):
            if w is not None:
                counts[w] += 1
        if 0 in counts:
            words = [word if n else unk for word, n in zip(words, counts)]
            counts = [n or len(tokenizer(unk, add_special_tokens=False)["input_ids"]) for n in counts]
        all_words.append(words)
        all_counts.append(counts)
    return all_words, all_counts


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


def document_neighbours(document_ids: Sequence[str | None]) -> tuple[list[int | None], list[int | None]]:
    """For every sentence, the index of the sentence before and after it in the same document (or None).

    Sentences of a document are taken in the order given; an empty or None id means "no document", so
    such a sentence has no neighbours.
    """
    previous: list[int | None] = [None] * len(document_ids)
    following: list[int | None] = [None] * len(document_ids)
    last_of_document: dict[str, int] = {}
    for i, document in enumerate(document_ids):
        if not document:
            continue
        if document in last_of_document:
            previous[i] = last_of_document[document]
            following[previous[i]] = i
        last_of_document[document] = i
    return previous, following


def _context_words(
    words: list[list[str]],
    counts: list[list[int]],
    neighbour: list[int | None],
    ex: int,
    position: int,
    step: int,
    limit: int,
) -> tuple[list[str], int]:
    """Whole words next to `position` of sentence `ex`, walking `step` (-1: left of it, +1: from it on) and
    on into the neighbouring sentences, while they fit in `limit` sub-tokens. Returns (words in reading
    order, sub-tokens used)."""
    taken: list[str] = []
    used = 0
    sentence: int | None = ex
    while sentence is not None and used < limit:
        indices = range(position - 1, -1, -1) if step < 0 else range(position, len(words[sentence]))
        for i in indices:
            if used + counts[sentence][i] > limit:
                return (taken[::-1] if step < 0 else taken), used
            used += counts[sentence][i]
            taken.append(words[sentence][i])
        sentence = neighbour[sentence]
        if sentence is not None:
            position = len(words[sentence]) if step < 0 else 0
    return (taken[::-1] if step < 0 else taken), used


def encode_examples(
    tokens: Sequence[Sequence[str]],
    tokenizer,
    max_length: int,
    window_overlap: int = 32,
    label_ids: Sequence[Sequence[int]] | None = None,
    continuation_label_ids: Sequence[int] | None = None,
    document_ids: Sequence[str | None] | None = None,
    context_size: int = 0,
) -> dict[str, list]:
    """Tokenise sentences into model inputs, one row per window.

    Returns columns `input_ids`, `attention_mask` (and `token_type_ids` when the tokenizer makes them),
    `word_index` (per sub-token: the word index if it is the word's first sub-token, else -1),
    `example_index`, `word_start`, `word_end`, and `labels` when `label_ids` is given.
    `continuation_label_ids[label]` is the label of a word's later sub-tokens when all sub-tokens are
    labelled (B-X -> I-X); when it is None they get -100.

    Document context (FLERT, Schweter & Akbik 2020): with `context_size > 0` and `document_ids`, each
    window is encoded between up to `context_size` sub-tokens of the words before it and as many after
    it, from the same sentence and then from the neighbouring sentences of the same document, whole
    words only and never beyond `max_length`. Context sub-tokens get word_index -1 and label -100: they
    are read, never labelled or predicted.
    """
    budget = max_length - tokenizer.num_special_tokens_to_add(pair=False)
    if budget < 1:
        raise RecipeError(f"max_length={max_length} leaves no room for words after the special tokens")
    if context_size < 0:
        raise RecipeError(f"context_size must be >= 0, got {context_size}")
    if document_ids is not None and len(document_ids) != len(tokens):
        raise ValueError(f"{len(document_ids)} document ids for {len(tokens)} sentences")
    out: dict[str, list] = {
        "input_ids": [],
        "attention_mask": [],
        "word_index": [],
        "example_index": [],
        "word_start": [],
        "word_end": [],
    }
    if label_ids is not None:
        out["labels"] = []
    if not tokens:
        return out
    words, counts = _words_and_counts([list(sentence) for sentence in tokens], tokenizer)
    with_context = context_size > 0 and document_ids is not None
    previous, following = document_neighbours(document_ids) if with_context else (None, None)
    pieces, layout = [], []  # the words of each window with its context; (ex, start, end, n_left)
    for ex, sentence_counts in enumerate(counts):
        for word_start, word_end in plan_windows(sentence_counts, budget, window_overlap):
            left: list[str] = []
            right: list[str] = []
            room = budget - sum(sentence_counts[word_start:word_end])
            if with_context and room > 0:
                # Both sides get up to half of the room; what one side cannot use goes to the other.
                half = min(context_size, (room + 1) // 2)
                left, used_left = _context_words(words, counts, previous, ex, word_start, -1, half)
                right, used_right = _context_words(
                    words, counts, following, ex, word_end, +1, min(context_size, room - used_left)
                )
                if half < context_size and room - used_right > used_left:  # the right side left room over
                    left, _ = _context_words(
                        words, counts, previous, ex, word_start, -1, min(context_size, room - used_right)
                    )
            pieces.append(left + words[ex][word_start:word_end] + right)
            layout.append((ex, word_start, word_end, len(left)))
    # Truncation only ever bites a single word longer than the whole budget (see plan_windows).
    encoded = tokenizer(pieces, is_split_into_words=True, truncation=True, max_length=max_length)
    for row, (ex, word_start, word_end, n_left) in enumerate(layout):
        _append_window(
            out,
            ex,
            word_start,
            word_end,
            n_left,
            encoded["input_ids"][row],
            encoded["attention_mask"][row],
            encoded["token_type_ids"][row] if "token_type_ids" in encoded else None,
            encoded.word_ids(row),
            label_ids,
            continuation_label_ids,
        )
    return out


def _append_window(
    out,
    ex,
    word_start,
    word_end,
    n_left,
    input_ids,
    attention_mask,
    token_type_ids,
    word_ids,
    label_ids,
    continuation_label_ids,
) -> None:
    """One window row; `word_ids` index the window's words after `n_left` context words."""
    word_index, labels, previous = [], [], None
    for w in word_ids:
        word = None if w is None or not n_left <= w < n_left + word_end - word_start else word_start + w - n_left
        if word is None:  # a special token or a context sub-token
            word_index.append(-1)
            labels.append(IGNORE_INDEX)
        elif w != previous:
            word_index.append(word)
            labels.append(label_ids[ex][word] if label_ids is not None else IGNORE_INDEX)
        else:
            word_index.append(-1)
            if label_ids is not None and continuation_label_ids is not None:
                labels.append(continuation_label_ids[label_ids[ex][word]])
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
    context_size: int = 0,
):
    """Encode a data split (columns `tokens`, `ner_tags`) into a `datasets.Dataset` of windows.

    With `sort_by_length` the rows are ordered by length so that sequential evaluation batches carry
    little padding; `example_index`/`word_index` still map every prediction back to its word.
    With `context_size`, sentences sharing a `document_id` (in split order) are each other's context;
    a split with no document ids is encoded sentence by sentence, with a warning.
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
                raise DataError(
                    f"sentence {i}: label {e.args[0]!r} is not in the label list {list(label2id)}"
                ) from None
        if label_all_subtokens:
            # A word's later sub-tokens continue its entity: B-X -> I-X, never a second B-.
            continuation = [label2id.get(continuation_tag(label, scheme), label2id[label]) for label in label2id]
    document_ids = None
    if context_size > 0:
        document_ids = dataset["document_id"] if "document_id" in dataset.column_names else []
        if not any(document_ids):
            logger.warning(
                "context_size=%d but the data has no documents (no -DOCSTART- lines or document_id "
                "values): each sentence is encoded without context",
                context_size,
            )
            document_ids = None
    encoded = encode_examples(
        tokens,
        tokenizer,
        max_length,
        window_overlap,
        label_ids,
        continuation,
        document_ids=document_ids,
        context_size=context_size,
    )
    encoded["length"] = [len(ids) for ids in encoded["input_ids"]]
    features = datasets.Dataset.from_dict(encoded)
    if sort_by_length:
        # A stable argsort, as Dataset.sort does, without its pyarrow FutureWarning in every run's log.
        lengths = encoded["length"]
        features = features.select(sorted(range(len(lengths)), key=lengths.__getitem__))
    return features
