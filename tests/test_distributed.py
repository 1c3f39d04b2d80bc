"""Several processes (gloo on CPU) give the run one process gives; a launch that silently runs one is refused.

The comparison runs use a copy of the tiny BERT without dropout: dropout masks are drawn per process, so
with dropout two processes cannot reproduce one. Without it, with the same global batch and sampler order,
the only difference left is the order of float sums (per-device forward passes, the gradient all-reduce),
so losses, F1 and weights must agree to ~1e-5.
"""

from __future__ import annotations

import json

import pytest
import torch

from nertune.distributed import (
    LaunchError,
    LengthGroupedEpochSampler,
    TokenBudgetBatchSampler,
    accelerate_launch_num_processes,
    batch_layout,
    check_world_size,
)
from nertune.recipe.schema import RecipeError, load_recipe
from nertune.training.run import run_training

from .helpers import REPO, ddp_launch, ddp_overrides, launch_module, log_history, tiny_overrides

# ---------------------------------------------------------------------------------------------------
# Units


@pytest.mark.parametrize(
    "per_device, global_batch, world_size, expected",
    [
        (16, None, 4, (16, 1)),  # no global batch: the recipe as it is (the global batch grows with the world)
        (16, 16, 1, (16, 1)),
        (16, 16, 2, (8, 1)),
        (16, 64, 1, (16, 4)),
        (16, 64, 2, (16, 2)),
        (16, 48, 2, (12, 2)),  # 24 per process: the fewest micro-batches of at most 16 that divide it
        (4, 6, 2, (3, 1)),
    ],
)
def test_batch_layout_keeps_the_global_batch(per_device, global_batch, world_size, expected):
    micro, accumulation = batch_layout(per_device, 1, global_batch, world_size)
    assert (micro, accumulation) == expected
    if global_batch is not None:
        assert micro * accumulation * world_size == global_batch and micro <= per_device


def test_batch_layout_and_recipe_errors(tiny_model_dir):
    with pytest.raises(LaunchError, match="global_batch_size=10 cannot be split evenly over 4 processes"):
        batch_layout(16, 1, 10, 4)
    with pytest.raises(RecipeError, match="exclude each other"):
        load_recipe(
            None, [f"model_name_or_path={tiny_model_dir}", "global_batch_size=32", "gradient_accumulation_steps=2"]
        )
    with pytest.raises(RecipeError, match="global_batch_size"):
        load_recipe(None, [f"model_name_or_path={tiny_model_dir}", "global_batch_size=0"])


@pytest.mark.parametrize(
    "cmdline, expected",
    [
        (
            [
                "/venv/bin/python",
                "/venv/bin/accelerate",
                "launch",
                "--cpu",
                "--num_processes",
                "2",
                "train.py",
                "r.yaml",
            ],
            2,
        ),
        (["/venv/bin/accelerate", "launch", "--num-processes=3", "train.py"], 3),
        (["python", "-m", "accelerate.commands.launch", "--num_processes", "4", "train.py"], 4),
        (["python", "-m", "accelerate.commands.accelerate_cli", "launch", "--num_processes", "5", "t.py"], 5),
        (["/venv/bin/python", "scripts/train.py", "--num_processes", "2"], None),  # not accelerate
        (["bash", "-c", "make train"], None),
    ],
)
def test_accelerate_launch_command_line_is_read(cmdline, expected):
    assert accelerate_launch_num_processes(cmdline) == expected


def test_accelerate_config_file_num_processes_is_read(tmp_path):
    config = tmp_path / "cpu.yaml"
    config.write_text(
        "compute_environment: LOCAL_MACHINE\ndistributed_type: MULTI_CPU\nnum_processes: 3\n"
        "use_cpu: true\nmixed_precision: 'no'\n"
    )
    assert accelerate_launch_num_processes(["accelerate", "launch", "--config_file", str(config), "t.py"]) == 3


def test_world_size_smaller_than_requested_is_refused(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    check_world_size(2)
    with pytest.raises(LaunchError, match="asked for 2 processes.*runs 1"):
        check_world_size(1)
    monkeypatch.delenv("WORLD_SIZE")
    monkeypatch.delenv("ACCELERATE_USE_CPU", raising=False)
    check_world_size(1)  # plain python


def test_length_grouped_order_depends_on_seed_and_epoch_only():
    lengths = [(i * 7) % 13 + 1 for i in range(64)]
    sampler = LengthGroupedEpochSampler(16, lengths, seed=42)
    first = list(sampler)
    assert sorted(first) == list(range(64)) and list(sampler) == first
    sampler.set_epoch(1)
    assert list(sampler) != first
    sampler.set_epoch(0)
    assert list(sampler) == first == list(LengthGroupedEpochSampler(16, lengths, seed=42))


def test_token_budget_batches_respect_the_budget_and_cover_every_sentence_once():
    lengths = [(i * 37) % 120 + 3 for i in range(500)]
    sampler = TokenBudgetBatchSampler(lengths, 512, seed=42)
    per_epoch = []
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        per_epoch.append(batches)
        assert len(batches) == len(sampler)
        assert sorted(i for batch in batches for i in batch) == list(range(500))
        assert all(len(batch) * max(lengths[i] for i in batch) <= 512 for batch in batches)
        assert max(lengths[i] for i in batches[0]) == max(lengths)  # the longest first: memory fails early
        assert len({len(batch) for batch in batches}) > 5  # many short sentences per step, few long ones
        assert min(len(batch) for batch in batches) >= 2  # the last batch is evened out, never a straggler
    assert per_epoch[0] != per_epoch[1]  # a new order every epoch, from the seed and epoch only
    sampler.set_epoch(0)
    assert list(sampler) == per_epoch[0] == list(TokenBudgetBatchSampler(lengths, 512, seed=42))
    with pytest.raises(LaunchError, match="max_tokens_per_batch=300 is too small.*at least 488"):
        TokenBudgetBatchSampler(lengths, 300, seed=42, dp_size=2)


@pytest.mark.parametrize("world_size, accumulation", [(2, 1), (2, 2)])
def test_token_budget_steps_are_the_same_on_one_and_n_processes(world_size, accumulation):
    lengths = [(i * 13) % 40 + 2 for i in range(301)]
    one = TokenBudgetBatchSampler(lengths, 400, seed=7)
    ranks = [
        TokenBudgetBatchSampler(lengths, 400, seed=7, dp_size=world_size, grad_accum=accumulation, rank=r)
        for r in range(world_size)
    ]
    for sampler in (one, *ranks):
        sampler.set_epoch(3)
    yielded = [list(sampler) for sampler in ranks]
    assert len({len(batches) for batches in yielded}) == 1 == len({len(s) for s in ranks})
    steps = len(one)
    assert len(yielded[0]) == steps * accumulation
    for step, batch in enumerate(one):
        micro_batches = [yielded[r][step * accumulation + a] for r in range(world_size) for a in range(accumulation)]
        assert all(micro_batches)  # no process idles in a step
        assert sorted(i for m in micro_batches for i in m) == sorted(batch)


def test_token_budget_recipe_key_is_checked(tiny_model_dir):
    recipe = load_recipe(None, [f"model_name_or_path={tiny_model_dir}", "max_tokens_per_batch=1024"])
    assert recipe.max_tokens_per_batch == 1024
    assert load_recipe(None, [f"model_name_or_path={tiny_model_dir}"]).max_tokens_per_batch is None
    with pytest.raises(RecipeError, match="'max_tokens_per_batch' must be at least 2 x max_length = 256, got 200"):
        load_recipe(None, [f"model_name_or_path={tiny_model_dir}", "max_tokens_per_batch=200"])


@pytest.mark.slow
def test_token_budget_trains_through_the_trainer(tiny_model_dir, synthetic_corpus, tmp_path):
    from nertune.training.run import setup_run

    recipe = load_recipe(
        None,
        tiny_overrides(
            tiny_model_dir,
            synthetic_corpus,
            tmp_path / "run",
            "max_tokens_per_batch=128",
            "num_train_epochs=4",
            "eval_strategy=no",
            "save_strategy=no",
        ),
    )
    metrics = run_training(recipe)
    lengths = [len(ids) for ids in setup_run(recipe).data.train_features["input_ids"]]
    steps_per_epoch = len(TokenBudgetBatchSampler(lengths, 128, seed=recipe.seed))
    assert steps_per_epoch < len(lengths) / 8  # short sentences: many more than 8 per optimizer step
    state = json.loads((tmp_path / "run" / "trainer_state.json").read_text())
    assert state["global_step"] == 4 * steps_per_epoch
    assert metrics["test_f1"] > 0.8


def test_shipped_accelerate_configs_load():
    from accelerate.commands.config.config_args import load_config_from_file

    kinds = {path.stem: load_config_from_file(str(path)) for path in (REPO / "recipes" / "accelerate").glob("*.yaml")}
    assert {name: str(c.distributed_type).split(".")[-1] for name, c in kinds.items()} == {
        "single-device": "NO",
        "multi-gpu": "MULTI_GPU",
        "fsdp": "FSDP",
        "deepspeed-zero2": "DEEPSPEED",
        "multi-node": "MULTI_GPU",
    }
    assert not any(c.use_cpu for c in kinds.values())  # use_cpu would make accelerate start one process
    assert kinds["multi-node"].num_machines > 1
    ds_file = REPO / kinds["deepspeed-zero2"].deepspeed_config["deepspeed_config_file"]
    assert json.loads(ds_file.read_text())["zero_optimization"]["stage"] == 2


# ---------------------------------------------------------------------------------------------------
# Real launches: two CPU processes over gloo


def test_two_processes_reproduce_one(ddp_setup):
    from transformers import AutoModelForTokenClassification

    tmp, model_dir, corpus = ddp_setup
    single = run_training(load_recipe(None, ddp_overrides(model_dir, corpus, tmp / "one")))
    ddp_launch(tmp, ddp_overrides(model_dir, corpus, tmp / "two"))
    double = json.loads((tmp / "two" / "metrics.json").read_text())

    assert (single["world_size"], double["world_size"]) == (1, 2)
    assert (double["per_device_train_batch_size"], double["gradient_accumulation_steps"]) == (8, 1)
    assert single["global_batch_size"] == double["global_batch_size"] == 16
    # Logged losses: the token mean over the global batch, not N times it.
    one, two = log_history(tmp / "one"), log_history(tmp / "two")
    for key in ("loss", "eval_loss", "eval_f1"):
        a, b = [h[key] for h in one if key in h], [h[key] for h in two if key in h]
        assert len(a) == len(b) > 0 and a == pytest.approx(b, rel=1e-4, abs=1e-6), key
    assert double["train_loss"] == pytest.approx(single["train_loss"], rel=1e-4)
    # Every sentence scored exactly once (no duplicates from the padded last batches), same scores.
    for split in ("validation", "test"):
        assert (
            double[f"n_{split}_words_predicted"]
            == double[f"n_{split}_words_in_input"]
            == single[f"n_{split}_words_in_input"]
        )
        assert double[f"{split}_f1"] == pytest.approx(single[f"{split}_f1"], abs=1e-9)
    assert (tmp / "two" / "test_predictions.conll").read_text() == (tmp / "one" / "test_predictions.conll").read_text()
    # Both ranks hold the same weights; the saved model is rank 0's, and the one-process model up to float sums.
    rank0, rank1 = torch.load(tmp / "rank0.pt"), torch.load(tmp / "rank1.pt")
    assert all(torch.equal(rank0[name], rank1[name]) for name in rank0)
    saved = AutoModelForTokenClassification.from_pretrained(tmp / "two").state_dict()
    reference = AutoModelForTokenClassification.from_pretrained(tmp / "one").state_dict()
    assert all(torch.equal(saved[name], rank0[name]) for name in saved)
    assert max((saved[name] - reference[name]).abs().max().item() for name in saved) < 1e-4


def test_lora_under_two_processes(ddp_setup):
    from nertune.evaluation.run import run_evaluation

    tmp, model_dir, corpus = ddp_setup
    out = tmp / "lora-two"
    ddp_launch(tmp, ddp_overrides(model_dir, corpus, out, "lora.enabled=true", "lora.r=4", "learning_rate=2e-2"))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["adapter_size_bytes"] > 0
    rank0, rank1 = torch.load(tmp / "rank0.pt"), torch.load(tmp / "rank1.pt")
    assert any("lora_A" in name for name in rank0)
    assert all(torch.equal(rank0[name], rank1[name]) for name in rank0)
    assert run_evaluation(out)["f1"] == pytest.approx(metrics["test_f1"])  # the saved adapter is the trained one


def test_accelerate_cpu_flag_running_one_process_is_refused(ddp_setup):
    tmp, model_dir, corpus = ddp_setup
    result = launch_module(
        ["accelerate.commands.launch", "--cpu", "--num_processes", "2"],
        REPO / "scripts" / "train.py",
        str(tmp / "recipe.yaml"),
        *ddp_overrides(model_dir, corpus, tmp / "cpu-flag"),
    )
    assert result.returncode != 0
    assert "asked for 2 processes" in result.stderr and "torchrun --nproc_per_node 2" in result.stderr
    assert not (tmp / "cpu-flag" / "checkpoints").exists()  # refused before any training
