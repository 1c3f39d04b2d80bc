"""Padding-free packed training batches: the same logits, loss and gradients as padded ones on the same sentences."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from nertune.data.align import IGNORE_INDEX
from nertune.recipe.schema import RecipeError, load_recipe
from nertune.training.trainer import PackingCollator, packing_collator
from tests.helpers import TINY_VOCAB, tiny_overrides


def _sentences(seed: int = 0, n: int = 7) -> list[dict]:
    """Windows of mixed lengths (CLS ... SEP) with first-sub-token labels, some -100."""
    generator = torch.Generator().manual_seed(seed)
    features = []
    for _ in range(n):
        length = int(torch.randint(3, 20, (1,), generator=generator))
        ids = [2, *torch.randint(5, len(TINY_VOCAB), (length - 2,), generator=generator).tolist(), 3]
        labels = torch.randint(0, 5, (length,), generator=generator).tolist()
        labels[0] = labels[-1] = IGNORE_INDEX
        labels[1::3] = [IGNORE_INDEX] * len(labels[1::3])
        features.append({"input_ids": ids, "token_type_ids": [0] * length, "labels": labels})
    return features


def _token_classifier(model_type: str, attention: str):
    from transformers import AutoConfig, AutoModelForTokenClassification

    config = AutoConfig.for_model(
        model_type,
        vocab_size=len(TINY_VOCAB),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=160,
        num_labels=5,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        pad_token_id=1 if model_type == "roberta" else 0,
    )
    torch.manual_seed(0)
    return AutoModelForTokenClassification.from_config(config, attn_implementation=attention)


def _padded(features: list[dict], pad_token_id: int) -> dict[str, torch.Tensor]:
    width = max(len(f["input_ids"]) for f in features)

    def pad(key, value):
        return torch.tensor([f[key] + [value] * (width - len(f[key])) for f in features])

    return {
        "input_ids": pad("input_ids", pad_token_id),
        "token_type_ids": pad("token_type_ids", 0),
        "attention_mask": torch.tensor(
            [[1] * len(f["input_ids"]) + [0] * (width - len(f["input_ids"])) for f in features]
        ),
        "labels": pad("labels", IGNORE_INDEX),
    }


def _loss_and_grads(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, dict]:
    model.zero_grad()
    batch = dict(batch)
    labels = batch.pop("labels")
    logits = model(**batch).logits
    loss = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE_INDEX, reduction="sum"
    )
    loss.backward()
    return logits, loss, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize(
    ("model_type", "attention"), [("bert", "sdpa"), ("bert", "eager"), ("roberta", "sdpa"), ("roberta", "eager")]
)
def test_packed_batch_matches_padded(model_type, attention):
    model = _token_classifier(model_type, attention)
    pad_token_id = model.config.pad_token_id
    features = _sentences()
    collator = packing_collator(model, pad_token_id, row_tokens=40)
    packed = collator(features)
    # Several sentences per row, rows no longer than the budget (or the longest sentence).
    assert packed["input_ids"].shape[0] < len(features) and packed["input_ids"].shape[1] <= 40
    assert int(packed["labels"].ne(IGNORE_INDEX).sum()) == sum(
        sum(label != IGNORE_INDEX for label in f["labels"]) for f in features
    )
    # RoBERTa numbers positions from padding_idx + 1; every window restarts there.
    first = 2 if model_type == "roberta" else 0
    assert int(packed["position_ids"].min()) == first
    padded_logits, padded_loss, padded_grads = _loss_and_grads(model, _padded(features, pad_token_id))
    packed_logits, packed_loss, packed_grads = _loss_and_grads(model, packed)
    assert packed_loss.item() == pytest.approx(padded_loss.item(), rel=1e-5)
    # Every sentence's logits where the packing put it.
    for (row, offset, feature), reference in zip(_placements(collator, features), padded_logits):
        length = len(feature["input_ids"])
        assert torch.allclose(packed_logits[row, offset : offset + length], reference[:length], atol=1e-5)
    for name, grad in padded_grads.items():
        assert torch.allclose(packed_grads[name], grad, atol=1e-5, rtol=1e-4), name


def _placements(collator: PackingCollator, features: list[dict]):
    """(row, offset, feature) of each sentence in the collator's batch, in the features' order."""
    from nertune.model.packing import cheapest_row_tokens, pack_group, pack_rows

    lengths = [len(f["input_ids"]) for f in features]
    rows = pack_rows(lengths, cheapest_row_tokens(lengths, max(collator.row_tokens, max(lengths)), len(lengths)))
    columns = {key: [f[key] for f in features] for key in ("input_ids", "token_type_ids", "labels")}
    placements, _ = pack_group(columns, rows, 0, torch.device("cpu"))
    by_window = {window: (row, offset) for window, row, offset in placements}
    return [(*by_window[w], features[w]) for w in range(len(features))]


def test_packing_under_bf16_autocast_matches_padded():
    model = _token_classifier("bert", "sdpa")
    features = _sentences(seed=1)
    packed = packing_collator(model, 0, row_tokens=64)(features)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, padded_loss, _ = _loss_and_grads(model, _padded(features, 0))
        _, packed_loss, _ = _loss_and_grads(model, packed)
    assert packed_loss.item() == pytest.approx(padded_loss.item(), rel=2e-2)


def test_packing_recipe_key(tiny_model_dir):
    base = [f"model_name_or_path={tiny_model_dir}"]
    assert load_recipe(None, base).packing is False
    assert load_recipe(None, [*base, "packing=true"]).packing is True
    with pytest.raises(RecipeError, match="'packing': packing=true needs head=linear"):
        load_recipe(None, [*base, "packing=true", "head=crf"])


@pytest.mark.slow
def test_packed_training_reproduces_padded_training(tiny_model_dir, synthetic_corpus, tmp_path):
    """The whole Trainer path: the same steps, losses and F1 packed as padded (no dropout: a packed row draws
    its dropout masks in another layout)."""
    from nertune.training.run import build_trainer, run_training, setup_run

    model_dir = tmp_path / "tiny-no-dropout"
    shutil.copytree(tiny_model_dir, model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (model_dir / "config.json").write_text(json.dumps(config))
    runs = {}
    for packing in ("false", "true"):
        overrides = tiny_overrides(
            model_dir, synthetic_corpus, tmp_path / packing, f"packing={packing}", "num_train_epochs=2",
            "save_strategy=no", "load_best_model_at_end=false", "logging_steps=2",
        )  # fmt: skip
        recipe = load_recipe(None, overrides)
        run = setup_run(recipe)
        loader = build_trainer(
            recipe, run.args, run.data, model=_token_classifier("bert", "sdpa")
        ).get_train_dataloader()
        assert isinstance(loader.collate_fn, PackingCollator) == (packing == "true")
        runs[packing] = run_training(recipe)
    history = {p: json.loads((tmp_path / p / "trainer_state.json").read_text())["log_history"] for p in runs}
    losses = {p: [h["loss"] for h in history[p] if "loss" in h] for p in runs}
    assert len(losses["true"]) == len(losses["false"]) > 3
    assert losses["true"] == pytest.approx(losses["false"], rel=1e-3)
    assert runs["true"]["test_f1"] == pytest.approx(runs["false"]["test_f1"], abs=0.02)
