"""Alignment of word labels to sub-tokens, windows for long sentences, merging back to words."""

from __future__ import annotations

import random

import pytest

from nertune.data.align import IGNORE_INDEX, encode_examples, encode_split, merge_window_predictions, plan_windows


def test_first_subtoken_carries_the_label_others_ignored(tiny_tokenizer):
    # "parisian" -> paris ##ian ; "johns" -> john ##s
    enc = encode_examples(
        [["johns", "lives", "in", "parisian"]], tiny_tokenizer, max_length=32, label_ids=[[1, 0, 0, 3]]
    )
    assert len(enc["input_ids"]) == 1
    tokens = tiny_tokenizer.convert_ids_to_tokens(enc["input_ids"][0])
    assert tokens == ["[CLS]", "john", "##s", "lives", "in", "paris", "##ian", "[SEP]"]
    assert enc["labels"][0] == [IGNORE_INDEX, 1, IGNORE_INDEX, 0, 0, 3, IGNORE_INDEX, IGNORE_INDEX]
    assert enc["word_index"][0] == [-1, 0, -1, 1, 2, 3, -1, -1]


def test_all_subtokens_mode_continues_with_inside_label(tiny_tokenizer):
    from datasets import Dataset

    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    label2id = {label: i for i, label in enumerate(labels)}
    split = Dataset.from_dict(
        {"tokens": [["johns", "lives", "in", "parisian"]], "ner_tags": [["B-PER", "O", "O", "B-LOC"]]}
    )
    features = encode_split(
        split, tiny_tokenizer, max_length=32, window_overlap=4, label2id=label2id, label_all_subtokens=True
    )
    # john=B-PER, ##s=I-PER (never a second B-), paris=B-LOC, ##ian=I-LOC
    assert features["labels"][0] == [-100, 1, 2, 0, 0, 3, 4, -100]


def test_word_without_subtokens_becomes_unknown_not_lost(tiny_tokenizer):
    words = ["john", "\u200b", "lives", "\x00", "in", "paris"]
    enc = encode_examples([words], tiny_tokenizer, max_length=32, label_ids=[[1, 0, 0, 0, 0, 3]])
    assert [w for w in enc["word_index"][0] if w >= 0] == list(range(len(words)))
    assert enc["labels"][0].count(IGNORE_INDEX) == 2  # only [CLS] and [SEP]


@pytest.mark.parametrize("n_words, max_length, overlap", [(1000, 32, 8), (57, 16, 0), (300, 128, 32)])
def test_long_sentence_keeps_every_word(tiny_tokenizer, n_words, max_length, overlap):
    rng = random.Random(n_words)
    words = [rng.choice(["john", "parisian", "lives", "in", "rome", "walked"]) for _ in range(n_words)]
    enc = encode_examples(
        [words],
        tiny_tokenizer,
        max_length=max_length,
        window_overlap=overlap,
        label_ids=[[i % 5 for i in range(n_words)]],
    )
    assert len(enc["input_ids"]) > 1
    assert all(len(ids) <= max_length for ids in enc["input_ids"])
    covered = {w for row in enc["word_index"] for w in row if w >= 0}
    assert covered == set(range(n_words))
    # Consecutive windows overlap when asked to (context on both sides of a cut).
    if overlap:
        assert all(enc["word_start"][i + 1] < enc["word_end"][i] for i in range(len(enc["input_ids"]) - 1))
    # Merge: predicting each sub-token's own word index must give back exactly 0..n-1.
    merged = merge_window_predictions(
        enc["word_index"], enc["example_index"], enc["word_start"], enc["word_end"], enc["word_index"], [n_words]
    )
    assert merged == [list(range(n_words))]


def test_merge_prefers_the_window_with_most_context():
    # Word 2 is at the right edge of window 0 (margin 0) and in the middle of window 1 (margin 1).
    word_index = [[-1, 0, 1, 2, -1], [-1, 1, 2, 3, -1]]
    predictions = [["x", "a0", "a1", "a2", "x"], ["x", "b1", "b2", "b3", "x"]]
    merged = merge_window_predictions(word_index, [0, 0], [0, 1], [3, 4], predictions, [4])
    assert merged == [["a0", "b1", "b2", "b3"]] or merged == [["a0", "a1", "b2", "b3"]]
    assert merged[0][2] == "b2" and merged[0][0] == "a0" and merged[0][3] == "b3"


def test_merge_raises_when_a_word_is_missing():
    with pytest.raises(AssertionError, match="got no prediction"):
        merge_window_predictions([[-1, 0, -1]], [0], [0], [2], [[0, 5, 0]], [2])


def test_plan_windows_single_huge_word_gets_its_own_window():
    assert plan_windows([1, 50, 1], budget=10, overlap=2) == [(0, 1), (1, 2), (2, 3)]
    assert plan_windows([], budget=10, overlap=2) == [(0, 0)]


# -- document context (context_size)


def _tokens(tokenizer, ids):
    return tokenizer.convert_ids_to_tokens(ids)


def test_context_comes_from_the_same_document_only_and_is_never_labelled(tiny_tokenizer):
    sentences = [["john", "lives"], ["in", "paris"], ["mary", "works"], ["at", "nasa"], ["rome", "."]]
    documents = ["a", "a", "a", "b", ""]
    labels = [[1, 0], [0, 3], [1, 0], [0, 2], [3, 0]]
    enc = encode_examples(
        sentences, tiny_tokenizer, max_length=32, label_ids=labels, document_ids=documents, context_size=8
    )
    rows = [_tokens(tiny_tokenizer, ids) for ids in enc["input_ids"]]
    assert rows[0] == ["[CLS]", "john", "lives", "in", "paris", "mary", "works", "[SEP]"]
    assert rows[1] == ["[CLS]", "john", "lives", "in", "paris", "mary", "works", "[SEP]"]
    assert rows[2] == ["[CLS]", "john", "lives", "in", "paris", "mary", "works", "[SEP]"]
    assert rows[3] == ["[CLS]", "at", "nasa", "[SEP]"]  # document b has one sentence
    assert rows[4] == ["[CLS]", "rome", ".", "[SEP]"]  # no document: no context
    # Only the sentence's own words are labelled and indexed; context is read, never predicted.
    assert enc["word_index"][1] == [-1, -1, -1, 0, 1, -1, -1, -1]
    assert enc["labels"][1] == [-100, -100, -100, 0, 3, -100, -100, -100]
    assert enc["labels"][0] == [-100, 1, 0, -100, -100, -100, -100, -100]


def test_context_is_whole_words_within_context_size_and_max_length(tiny_tokenizer):
    # johns = john ##s, parisian = paris ##ian: a side never ends inside a word.
    sentences = [["johns", "lives", "in", "parisian"], ["rome"], ["parisian", "visited", "johns"]]
    enc = encode_examples(sentences, tiny_tokenizer, max_length=32, document_ids=["d"] * 3, context_size=3)
    assert _tokens(tiny_tokenizer, enc["input_ids"][1]) == [
        "[CLS]",
        "in",
        "paris",
        "##ian",
        "rome",
        "paris",
        "##ian",
        "visited",
        "[SEP]",
    ]
    # max_length leaves room for 3 sub-tokens: half each, but the right side cannot use its half
    # (the next word has 2 sub-tokens), so the left side takes it.
    enc = encode_examples(sentences, tiny_tokenizer, max_length=6, document_ids=["d"] * 3, context_size=5)
    assert _tokens(tiny_tokenizer, enc["input_ids"][enc["example_index"].index(1)]) == [
        "[CLS]",
        "in",
        "paris",
        "##ian",
        "rome",
        "[SEP]",
    ]
    # The first sentence of a document has no left context: the right side gets all the room.
    enc = encode_examples(sentences, tiny_tokenizer, max_length=12, document_ids=["d"] * 3, context_size=5)
    assert _tokens(tiny_tokenizer, enc["input_ids"][0]) == [
        "[CLS]",
        "john",
        "##s",
        "lives",
        "in",
        "paris",
        "##ian",
        "rome",
        "paris",
        "##ian",
        "visited",
        "[SEP]",
    ]


@pytest.mark.parametrize("max_length, context_size", [(16, 4), (32, 12), (64, 30), (12, 11)])
def test_context_never_costs_a_word_or_a_label(tiny_tokenizer, max_length, context_size):
    rng = random.Random(max_length)
    vocabulary = ["john", "parisian", "lives", "in", "rome", "walked", "\u200b"]
    sentences = [[rng.choice(vocabulary) for _ in range(rng.randrange(0, 40))] for _ in range(30)]
    documents = [rng.choice(["x", "y", ""]) for _ in sentences]
    labels = [[rng.randrange(5) for _ in words] for words in sentences]
    plain = encode_examples(sentences, tiny_tokenizer, max_length, 4, labels)
    enc = encode_examples(
        sentences, tiny_tokenizer, max_length, 4, labels, document_ids=documents, context_size=context_size
    )
    assert all(len(ids) <= max_length for ids in enc["input_ids"])
    # The same windows, the same labelled sub-tokens in the same order: context only adds -100 around them.
    for key in ("example_index", "word_start", "word_end"):
        assert enc[key] == plain[key]
    for row in range(len(enc["input_ids"])):
        assert [w for w in enc["word_index"][row] if w >= 0] == [w for w in plain["word_index"][row] if w >= 0]
        assert [x for x in enc["labels"][row] if x != IGNORE_INDEX] == [
            x for x in plain["labels"][row] if x != IGNORE_INDEX
        ]
    assert sum(map(len, enc["input_ids"])) > sum(map(len, plain["input_ids"]))  # and some context was added
    merged = merge_window_predictions(
        enc["word_index"],
        enc["example_index"],
        enc["word_start"],
        enc["word_end"],
        enc["word_index"],
        [len(s) for s in sentences],
    )
    assert merged == [list(range(len(s))) for s in sentences]


def test_context_size_zero_or_no_documents_changes_nothing(tiny_tokenizer):
    sentences = [["john", "lives"], ["in", "parisian"]]
    plain = encode_examples(sentences, tiny_tokenizer, 32)
    assert encode_examples(sentences, tiny_tokenizer, 32, document_ids=["d", "d"], context_size=0) == plain
    assert encode_examples(sentences, tiny_tokenizer, 32, document_ids=["", ""], context_size=8) == plain
    assert encode_examples(sentences, tiny_tokenizer, 32, context_size=8) == plain
    with pytest.raises(ValueError, match="1 document ids for 2 sentences"):
        encode_examples(sentences, tiny_tokenizer, 32, document_ids=["d"], context_size=8)


def test_sort_by_length_is_stable_and_quiet(tiny_tokenizer, recwarn):
    from datasets import Dataset

    # Lengths repeat, so ties show whether input order survives within a length.
    sentences = [["john"] * (i * 7 % 5 + 1) for i in range(20)]
    split = Dataset.from_dict({"tokens": sentences, "ner_tags": [["O"] * len(s) for s in sentences]})
    features = encode_split(split, tiny_tokenizer, 32, 4, {"O": 0}, sort_by_length=True)
    assert features["length"] == sorted(features["length"])
    order = features["example_index"]
    assert sorted(order) == list(range(20))  # every sentence once
    for a, b in zip(order, order[1:]):
        if len(sentences[a]) == len(sentences[b]):
            assert a < b
    # Dataset.sort logs a pyarrow FutureWarning in every run; the product's own ordering does not.
    assert not [w for w in recwarn if issubclass(w.category, FutureWarning)]
