"""The word-embedding gradient in a reused buffer (`training.embedding_grad`): the same optimizer steps as the
dense backward, with gradient accumulation and a padding row, and installed by the Trainer on one process."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from transformers import BertConfig, BertForTokenClassification

from nertune.training.embedding_grad import reuse_word_embedding_grad
from tests.helpers import tiny_recipe


def _model() -> BertForTokenClassification:
    config = BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=3,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        pad_token_id=0,
    )
    torch.manual_seed(0)
    return BertForTokenClassification(config)


def _batches(seed: int, count: int) -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(count):
        ids = torch.randint(1, 50, (3, 7), generator=generator)
        ids[0, 5:] = 0  # padding: the padding row gets no gradient either way
        ids[1, :3] = 7  # a repeated token: its rows are summed
        batches.append(
            {
                "input_ids": ids,
                "attention_mask": ids.ne(0).long(),
                "labels": torch.randint(0, 3, (3, 7), generator=generator),
            }
        )
    return batches


def _train(model, steps: int, micro_batches: int) -> list[torch.Tensor]:
    # SGD, not AdamW: the attention key bias has a gradient of rounding noise only (softmax ignores it), which
    # Adam would scale up to full steps and so compare noise with noise.
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    grads = []
    for step in range(steps):
        for batch in _batches(step, micro_batches):
            model(**batch).loss.backward()
        grads.append(model.get_input_embeddings().weight.grad.clone())
        optimizer.step()
        model.zero_grad(set_to_none=True)
    return grads


@pytest.mark.parametrize("micro_batches", [1, 3])
def test_reused_buffer_gives_the_dense_optimizer_steps(micro_batches):
    dense, reused = _model(), _model()
    handle = reuse_word_embedding_grad(reused)
    assert handle is not None and reused.get_input_embeddings().sparse
    dense_grads = _train(dense, 4, micro_batches)
    reused_grads = _train(reused, 4, micro_batches)
    for a, b in zip(dense_grads, reused_grads, strict=True):
        assert not b.is_sparse
        torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-7)
    assert dense_grads[0][0].abs().sum() == 0  # the padding row
    for (name, a), b in zip(dense.named_parameters(), reused.parameters(), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6, msg=name)
    # One buffer, reused: after another backward the gradient is the very tensor the hook holds.
    reused(**_batches(9, 1)[0]).loss.backward()
    assert reused.get_input_embeddings().weight.grad is handle.buffer


def test_frozen_embedding_and_second_install_are_left_alone():
    model = _model()
    model.get_input_embeddings().weight.requires_grad_(False)
    assert reuse_word_embedding_grad(model) is None
    assert not model.get_input_embeddings().sparse
    model = _model()
    first = reuse_word_embedding_grad(model)
    assert reuse_word_embedding_grad(model) is first
    first.remove()
    assert not model.get_input_embeddings().sparse
    dense = copy.deepcopy(model)
    torch.testing.assert_close(_train(model, 1, 1)[0], _train(dense, 1, 1)[0])


@pytest.mark.slow
def test_trainer_installs_it_on_one_process(tiny_model_dir, synthetic_corpus, tmp_path):
    """A real Trainer run on one process trains with the buffer and logs finite losses that fall."""
    from nertune.training.model_setup import build_model
    from nertune.training.run import build_trainer, setup_run

    recipe = tiny_recipe(
        tiny_model_dir, synthetic_corpus, tmp_path / "run", "max_steps=30", "eval_strategy=no",
        "save_strategy=no", "logging_steps=5", "load_best_model_at_end=false",
    )  # fmt: skip
    run = setup_run(recipe)
    model = build_model(recipe, run.model_path, run.data)
    trainer = build_trainer(recipe, run.args, run.data, model=model)
    trainer.train()
    embedding = model.get_input_embeddings()
    assert embedding.sparse and embedding._nertune_reused_grad.buffer is not None
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == 6 and all(map(torch.isfinite, torch.tensor(losses)))
    assert losses[-1] < losses[0], json.dumps(losses)
