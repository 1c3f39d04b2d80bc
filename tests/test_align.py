"""Alignment of word labels to sub-tokens, windows for long sentences, merging back to words."""

from __future__ import annotations

import random

import pytest

from nertune.align import IGNORE_INDEX, encode_examples, encode_split, merge_window_predictions, plan_windows


def test_first_subtoken_carries_the_label_others_ignored(tiny_tokenizer):
    # "parisian" -> paris ##ian ; "johns" -> john ##s
    enc = encode_examples([["johns", "lives", "in", "parisian"]], tiny_tokenizer, max_length=32,
                          label_ids=[[1, 0, 0, 3]])
    assert len(enc["input_ids"]) == 1
    tokens = tiny_tokenizer.convert_ids_to_tokens(enc["input_ids"][0])
    assert tokens == ["[CLS]", "john", "##s", "lives", "in", "paris", "##ian", "[SEP]"]
    assert enc["labels"][0] == [IGNORE_INDEX, 1, IGNORE_INDEX, 0, 0, 3, IGNORE_INDEX, IGNORE_INDEX]
    assert enc["word_index"][0] == [-1, 0, -1, 1, 2, 3, -1, -1]


def test_all_subtokens_mode_continues_with_inside_label(tiny_tokenizer):
    from datasets import Dataset

    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    label2id = {label: i for i, label in enumerate(labels)}
    split = Dataset.from_dict({"tokens": [["johns", "lives", "in", "parisian"]],
                               "ner_tags": [["B-PER", "O", "O", "B-LOC"]]})
    features = encode_split(split, tiny_tokenizer, max_length=32, window_overlap=4, label2id=label2id,
                            label_all_subtokens=True)
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
    enc = encode_examples([words], tiny_tokenizer, max_length=max_length, window_overlap=overlap,
                          label_ids=[[i % 5 for i in range(n_words)]])
    assert len(enc["input_ids"]) > 1
    assert all(len(ids) <= max_length for ids in enc["input_ids"])
    covered = {w for row in enc["word_index"] for w in row if w >= 0}
    assert covered == set(range(n_words))
    # Consecutive windows overlap when asked to (context on both sides of a cut).
    if overlap:
        assert all(enc["word_start"][i + 1] < enc["word_end"][i] for i in range(len(enc["input_ids"]) - 1))
    # Merge: predicting each sub-token's own word index must give back exactly 0..n-1.
    merged = merge_window_predictions(enc["word_index"], enc["example_index"], enc["word_start"],
                                      enc["word_end"], enc["word_index"], [n_words])
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
