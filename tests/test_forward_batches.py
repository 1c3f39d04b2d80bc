"""Windows into forward passes: padded batches, packed rows (several windows per row, each seeing only
itself), and the backend's choice between them."""

from __future__ import annotations

import random

import pytest
import torch

from nertune.model.packing import (
    cheapest_row_tokens,
    pack_rows,
    packed_batches,
    packed_shapes,
    padded_batches,
    padding_share,
)

from .helpers import build_tiny_model


def random_features(n: int, seed: int = 0, shortest: int = 3, longest: int = 30, vocab: int = 50) -> dict:
    rng = random.Random(seed)
    ids = [[rng.randrange(5, vocab) for _ in range(rng.randint(shortest, longest))] for _ in range(n)]
    return {
        "input_ids": ids,
        "attention_mask": [[1] * len(row) for row in ids],
        "token_type_ids": [[0] * len(row) for row in ids],
    }


def test_pack_rows_places_every_window_once_within_the_row_length():
    lengths = [5, 30, 12, 7, 30, 1, 18, 40, 9, 9, 3]
    rows = pack_rows(lengths, 32)
    placed = sorted(w for row in rows for w in row)
    assert placed == list(range(len(lengths)))
    for row in rows:
        assert sum(lengths[w] for w in row) <= 32 or len(row) == 1  # only an over-long window stands alone
    assert [7] in rows  # 40 > 32: a row of its own
    assert len(rows) <= 6  # first-fit decreasing: 164 tokens in rows of 32 (the 40 alone) need 6 at most


def test_packed_shapes_are_the_passes_packed_batches_makes():
    features = random_features(40, seed=3)
    lengths = [len(window) for window in features["input_ids"]]
    made = [tuple(batch["input_ids"].shape) for _, batch in packed_batches(features, 0, 4, 48, torch.device("cpu"))]
    assert packed_shapes(lengths, 48, 4) == made


def test_cheapest_row_tokens_trades_unused_room_against_row_width():
    assert cheapest_row_tokens([60] * 8, 128, 32) == 64  # two per row of 128 or one per row of 64: narrower wins
    assert cheapest_row_tokens([100, 20, 8], 128, 32) == 128  # all in one row of 128 beats two rows of 104
    assert cheapest_row_tokens([5, 7, 3], 128, 32) == 16  # short windows: a narrow row
    assert cheapest_row_tokens([300], 128, 32) == 128  # never beyond the maximum
    for seed in range(5):
        lengths = [len(window) for window in random_features(30, seed=seed)["input_ids"]]
        chosen = cheapest_row_tokens(lengths, 128, 32)
        assert chosen % 8 == 0 and max(lengths) <= chosen <= 128


def test_padding_share():
    assert padding_share([10, 10, 10, 10], 2) == 0
    assert padding_share([2, 10], 2) == pytest.approx(20 / 12 - 1)
    assert padding_share([2, 10], 1) == 0


@pytest.mark.parametrize("with_types", [True, False])
def test_packed_rows_give_each_window_the_logits_it_gets_alone(with_types):
    from transformers import BertForTokenClassification

    torch.manual_seed(0)
    encoder = build_tiny_model()
    model = BertForTokenClassification(encoder.config).eval()
    model.bert.load_state_dict(encoder.state_dict(), strict=False)
    features = random_features(23, vocab=model.config.vocab_size)
    if not with_types:
        del features["token_type_ids"]
    alone = {}
    with torch.inference_mode():
        for placements, batch in padded_batches(features, 0, 4, torch.device("cpu")):
            logits = model(**batch).logits
            for window, row, offset in placements:
                alone[window] = logits[row, offset : offset + len(features["input_ids"][window])]
        seen = []
        for placements, batch in packed_batches(features, 0, 2, 64, torch.device("cpu")):
            assert batch["input_ids"].shape[0] <= 2 and batch["input_ids"].shape[1] <= 64
            assert batch["attention_mask"].shape == (batch["input_ids"].shape[0], 1, *[batch["input_ids"].shape[1]] * 2)
            logits = model(**batch).logits
            for window, row, offset in placements:
                seen.append(window)
                together = logits[row, offset : offset + len(features["input_ids"][window])]
                torch.testing.assert_close(together, alone[window], atol=1e-5, rtol=1e-4)
    assert sorted(seen) == list(range(23))
    assert len(alone) == 23


def tiny_backend(model_type: str):
    from transformers import AutoConfig, AutoModelForTokenClassification

    from nertune.inference.backends import TorchBackend

    config = AutoConfig.for_model(
        model_type,
        vocab_size=60,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=160,
        num_labels=3,
        pad_token_id=1,
    )
    torch.manual_seed(0)
    return TorchBackend(AutoModelForTokenClassification.from_config(config))


def test_the_backend_packs_mixed_lengths_and_pads_sorted_ones():
    backend = tiny_backend("bert")
    mixed = random_features(30, shortest=3, longest=60)
    batches = list(backend.batches(mixed, 0, 8, 64))
    assert backend.packs is True
    assert "position_ids" in batches[0][1] and batches[0][1]["attention_mask"].dim() == 4
    same_length = random_features(30, shortest=20, longest=20)  # nothing to gain: padded
    (placements, batch), *_ = backend.batches(same_length, 0, 8, 64)
    assert "position_ids" not in batch and batch["attention_mask"].dim() == 2


def test_a_model_whose_packed_logits_differ_is_padded():
    """RoBERTa numbers positions after its padding index: packed rows with positions 0, 1, ... would
    change its logits, so the backend checks and pads instead."""
    backend = tiny_backend("roberta")
    features = random_features(30, shortest=3, longest=60)
    batches = list(backend.batches(features, 1, 8, 64))
    assert backend.packs is False
    assert all("position_ids" not in batch for _, batch in batches)
    assert sorted(w for placements, _ in batches for w, _, _ in placements) == list(range(30))


def test_predictions_are_the_same_packed_or_padded(trained_model_dir, monkeypatch):
    import nertune.inference.backends
    from nertune.inference.predictor import NerPredictor

    from .helpers import make_sentences

    sentences = [words for words, _ in make_sentences(40, seed=5)]
    predictor = NerPredictor.from_pretrained(trained_model_dir, device="cpu", precision="fp32", batch_size=4)
    predictor.backend.packs = False
    padded = predictor.predict_words(sentences)
    monkeypatch.setattr(nertune.inference.backends, "PACK_ABOVE_PADDING", -1.0)  # pack whatever the padding
    predictor.backend.packs = None
    packed = predictor.predict_words(sentences)
    assert predictor.backend.packs is True
    assert [[tag for tag, _ in s] for s in packed] == [[tag for tag, _ in s] for s in padded]
    for p, q in zip(packed, padded):
        assert [score for _, score in p] == pytest.approx([score for _, score in q], abs=1e-4)
