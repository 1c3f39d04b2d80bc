"""Scale-out on one machine, with real processes: two "machines" on loopback, and FSDP2 over gloo.

`accelerate launch --cpu` takes accelerate's single-process launcher whatever --num_machines says (each
"machine" would train alone: `check_world_size` refuses it), so the two machines are launched as the shipped
multi-node config does (recipes/accelerate/multi-node.yaml: torchrun underneath, gloo on a CPU). `accelerate
launch` also refuses FSDP with --cpu; the FSDP2 path (recipes/accelerate/fsdp.yaml: fully_shard per
`_no_split_modules` layer, then the root) is run the way PyTorch's own tests run it, under torchrun on a CPU
device mesh.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from nertune.recipe.schema import load_recipe
from nertune.training.run import run_training
from tests.helpers import REPO, ddp_overrides, free_port, log_history, subprocess_env

pytestmark = pytest.mark.slow

FSDP_WORKER = """\
# A few FSDP2 steps (fully_shard over a gloo CPU mesh) of a tiny BERT token classifier; rank 0 writes the losses.
import json
import sys

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from transformers import BertConfig, BertForTokenClassification

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
torch.manual_seed(0)
config = BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                    num_labels=5, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
model = BertForTokenClassification(config)
mesh = init_device_mesh("cpu", (world,))
# As accelerate's TRANSFORMER_BASED_WRAP (recipes/accelerate/fsdp.yaml): each _no_split_modules layer, then the root.
for module in model.modules():
    if type(module).__name__ in model._no_split_modules:
        fully_shard(module, mesh=mesh)
fully_shard(model, mesh=mesh)
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
generator = torch.Generator().manual_seed(1)
losses = []
for step in range(5):
    ids = torch.randint(5, 64, (8, 12), generator=generator)  # the global batch: 8 sentences
    labels = torch.randint(0, 5, (8, 12), generator=generator)
    labels[:, ::4] = -100
    mine = slice(rank * 8 // world, (rank + 1) * 8 // world)
    logits = model(input_ids=ids[mine]).logits
    token_sum = torch.nn.functional.cross_entropy(logits.reshape(-1, 5), labels[mine].reshape(-1), reduction="sum")
    # The token mean over the global batch; FSDP averages the ranks' gradients, hence the world size.
    loss = token_sum * world / labels.ne(-100).sum()
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    logged = (loss / world).detach()
    dist.all_reduce(logged)
    losses.append(logged.item())
if rank == 0:
    json.dump(losses, open(sys.argv[1], "w"))
dist.barrier()
dist.destroy_process_group()
"""


def test_two_machines_on_loopback_reproduce_one_process(ddp_setup):
    tmp, model_dir, corpus = ddp_setup
    single = run_training(load_recipe(None, ddp_overrides(model_dir, corpus, tmp / "machines-one")))
    port = str(free_port())
    overrides = ddp_overrides(model_dir, corpus, tmp / "machines-two")
    machines = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "accelerate.commands.launch",
                "--config_file",
                str(REPO / "recipes/accelerate/multi-node.yaml"),
                "--num_machines",
                "2",
                "--machine_rank",
                str(rank),
                "--num_processes",
                "2",
                "--main_process_ip",
                "127.0.0.1",
                "--main_process_port",
                port,
                str(tmp / "worker.py"),
                str(tmp),
                str(tmp / "recipe.yaml"),
                *overrides,
            ],
            env=subprocess_env(),
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for rank in (0, 1)
    ]
    outputs = [machine.communicate(timeout=500) for machine in machines]
    for machine, (out, err) in zip(machines, outputs):
        assert machine.returncode == 0, out[-2000:] + err[-4000:]
    double = json.loads((tmp / "machines-two" / "metrics.json").read_text())
    assert (single["world_size"], double["world_size"]) == (1, 2)
    one, two = log_history(tmp / "machines-one"), log_history(tmp / "machines-two")
    for key in ("loss", "eval_loss", "eval_f1"):
        a, b = [h[key] for h in one if key in h], [h[key] for h in two if key in h]
        assert len(a) == len(b) > 0 and a == pytest.approx(b, rel=1e-4, abs=1e-6), key
    assert double["train_loss"] == pytest.approx(single["train_loss"], rel=1e-4)
    assert double["test_f1"] == pytest.approx(single["test_f1"], abs=1e-9)


def test_fsdp2_fully_shard_on_two_processes_matches_one(tmp_path):
    (tmp_path / "fsdp_worker.py").write_text(FSDP_WORKER)
    losses = {}
    for processes in (1, 2):
        result = subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
             "--master_port", str(free_port()), str(tmp_path / "fsdp_worker.py"), str(tmp_path / f"{processes}.json")],
            env=subprocess_env(), cwd=REPO, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
        losses[processes] = json.loads((tmp_path / f"{processes}.json").read_text())
    assert len(losses[1]) == 5 and losses[1][-1] < losses[1][0]  # it trains
    assert losses[2] == pytest.approx(losses[1], rel=1e-5)
