"""Running on several processes (`accelerate launch`, `torchrun`) without changing the result.

- `check_world_size`: refuse to run one process when the launcher was asked for several
  (`accelerate launch --cpu --num_processes 2` silently starts ONE process and tells it nothing);
- `batch_layout`: a recipe's `global_batch_size` becomes per-device batch x accumulation x world size;
- `LengthGroupedEpochSampler`: length-grouped shuffling whose order does not depend on the world size;
- `TokenBudgetBatchSampler`: optimizer steps of similar-length sentences under a padded-token budget, the same
  steps on any world size.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from transformers.trainer_pt_utils import BatchRebalanceSampler, LengthGroupedSampler, get_length_grouped_indices

from nertune.errors import NertuneError

logger = logging.getLogger(__name__)

# What torchrun / `accelerate launch --multi_gpu` (WORLD_SIZE) and MPI launchers export to every process.
_WORLD_SIZE_VARIABLES = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")


class LaunchError(NertuneError):
    """The processes that are running are not the ones the launcher was asked for."""


def _accelerate_launch_arguments(cmdline: list[str]) -> list[str] | None:
    """The arguments after `accelerate launch` in a command line, or None if it is not that command."""
    for i, part in enumerate(cmdline):
        name = Path(part).name
        if name in ("accelerate", "accelerate.commands.accelerate_cli") and cmdline[i + 1 : i + 2] == ["launch"]:
            return cmdline[i + 2 :]
        if name == "accelerate-launch" or part == "accelerate.commands.launch":
            return cmdline[i + 1 :]
    return None


def accelerate_launch_num_processes(cmdline: list[str]) -> int | None:
    """`--num_processes` of an `accelerate launch` command line, else that of its config file, else None."""
    arguments = _accelerate_launch_arguments(cmdline)
    if arguments is None:
        return None
    from accelerate.commands.config.config_args import default_config_file, load_config_from_file
    from accelerate.commands.launch import launch_command_parser

    try:
        parsed, _ = launch_command_parser().parse_known_args(arguments)
    except SystemExit:  # a command line this accelerate version does not parse: nothing to compare against
        return None
    if parsed.num_processes is not None:
        return parsed.num_processes
    config_file = parsed.config_file or default_config_file
    if not Path(config_file).is_file():
        return None
    return getattr(load_config_from_file(config_file), "num_processes", None)


def requested_world_size() -> tuple[int, str] | None:
    """How many processes the launcher was asked for, and where that was read; None for a plain `python`."""
    for variable in _WORLD_SIZE_VARIABLES:
        if os.environ.get(variable, "").isdigit():
            return int(os.environ[variable]), f"{variable}={os.environ[variable]}"
    # accelerate's single-process launcher (taken with --cpu, with `use_cpu: true`, or without --multi_gpu on
    # a machine with < 2 GPUs) exports ACCELERATE_USE_CPU but no process count: read the count from the
    # launcher's own command line, the parent process.
    if "ACCELERATE_USE_CPU" not in os.environ:
        return None
    import psutil  # an accelerate dependency

    try:
        cmdline = psutil.Process().parent().cmdline()
    except (psutil.Error, AttributeError):
        return None
    asked = accelerate_launch_num_processes(cmdline)
    if asked is None:
        return None
    return asked, f"`accelerate launch` with num_processes={asked}"


def check_world_size(world_size: int) -> None:
    """Log the real world size; raise LaunchError when the launcher was asked for more processes than run."""
    requested = requested_world_size()
    logger.info("world size %d (%s)", world_size, requested[1] if requested else "plain python")
    if requested is None or requested[0] <= world_size:
        return
    asked = requested[0]
    raise LaunchError(
        f"the launcher was asked for {asked} processes ({requested[1]}), but torch.distributed runs "
        f"{world_size}: the same training would silently run {asked}x slower. `accelerate launch --cpu` (or an "
        "accelerate config with `use_cpu: true`, or one without --multi_gpu on a machine with fewer GPUs) "
        f"starts a single process. On CPU use `accelerate launch --multi_gpu --num_processes {asked}` or "
        f"`torchrun --nproc_per_node {asked}` (gloo), e.g. `make train-multi-gpu NUM_PROCESSES={asked}`."
    )


def batch_layout(
    per_device_batch_size: int, gradient_accumulation_steps: int, global_batch_size: int | None, world_size: int
) -> tuple[int, int]:
    """(per-device micro-batch, gradient accumulation steps) for this world size.

    Without `global_batch_size` the recipe's values are used as they are (the global batch then grows with
    the number of processes). With it, each process takes `global_batch_size / world_size` sentences per
    optimizer step, in as few micro-batches of at most `per_device_batch_size` as divide it evenly.
    """
    if global_batch_size is None:
        return per_device_batch_size, gradient_accumulation_steps
    if global_batch_size % world_size:
        raise LaunchError(
            f"global_batch_size={global_batch_size} cannot be split evenly over {world_size} processes; "
            f"use a multiple of {world_size} or another number of processes"
        )
    per_process = global_batch_size // world_size
    accumulation = -(-per_process // per_device_batch_size)  # ceil: micro-batches no larger than the recipe's
    while per_process % accumulation:
        accumulation += 1
    return per_process // accumulation, accumulation


class LengthGroupedEpochSampler(LengthGroupedSampler):
    """Length-grouped shuffling whose order depends only on the seed, the epoch and the global batch.

    transformers' own sampler groups by the per-device batch and draws from the global RNG, so its order
    changes with the number of processes (and after a resume). Here every process draws the same order;
    accelerate then deals consecutive per-device batches to the processes, so each optimizer step sees the
    same sentences whatever the world size.
    """

    def __init__(self, global_batch_size: int, lengths: list[int], seed: int):
        super().__init__(global_batch_size, lengths=lengths)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(get_length_grouped_indices(self.lengths, self.batch_size, generator=generator))


def pack_token_budget(lengths: list[int], max_tokens: int, generator: torch.Generator) -> list[list[int]]:
    """Global batches (lists of indices) of similar lengths whose padded size (count x longest) <= max_tokens.

    Sentences are sorted by length (ties broken by `generator`) and packed greedily, so short sentences share
    a batch many at a time. A last batch smaller than the one before it is evened out with it (both stay
    under the budget), so no step is left with a sentence or two.
    """
    tie_break = torch.randperm(len(lengths), generator=generator).tolist()
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], tie_break[i]))
    batches: list[list[int]] = []
    for index in order:
        if batches and (len(batches[-1]) + 1) * lengths[batches[-1][0]] <= max_tokens:
            batches[-1].append(index)
        else:
            batches.append([index])
    if len(batches) > 1 and len(batches[-1]) < len(batches[-2]):
        merged = batches[-2] + batches[-1]
        half = (len(merged) + 1) // 2  # the longer half keeps at most the sentences its batch had
        batches[-2:] = [merged[:half], merged[half:]]
    return batches


class TokenBudgetBatchSampler(BatchRebalanceSampler):
    """Optimizer steps of at most `max_tokens` padded tokens; the steps depend on the seed and epoch only.

    Each epoch packs the sentences into global batches (`pack_token_budget`), shuffles their order (the
    batch holding the longest sentence first, so memory fails on the first step if it fails at all), and
    splits every global batch into `world_size x gradient_accumulation` micro-batches by dealing its
    length-sorted sentences round-robin. Process `rank` yields its `grad_accum` micro-batches of each step,
    so the optimizer sees the same sentences on 1 or N processes. A `BatchRebalanceSampler` subclass: the
    Trainer passes it as the loader's `batch_sampler` and leaves it unsharded.

    Learning rate: the loss is a token mean over the step (`NerTrainer.compute_loss`), so the gradient's scale
    does not grow with the step; a budget of k times the tokens of the sentence-count recipe's step only averages
    away noise. The rule for AdamW is the square root: learning_rate x sqrt(k), warmup as a ratio unchanged.
    With `packing`, the same micro-batches are packed several sentences to a row (no padding between them).
    """

    def __init__(
        self, lengths: list[int], max_tokens: int, seed: int, dp_size: int = 1, grad_accum: int = 1, rank: int = 0
    ):
        groups = dp_size * grad_accum
        longest = max(lengths)
        # Every global batch, the evened-out last one included, then holds at least one sentence per group.
        if max_tokens < 2 * groups * longest:
            raise LaunchError(
                f"max_tokens_per_batch={max_tokens} is too small for {dp_size} process(es) x {grad_accum} "
                f"accumulation step(s) with windows of up to {longest} sub-tokens: it must be at least "
                f"{2 * groups * longest} (2 x processes x accumulation x longest window)"
            )
        self.lengths = list(lengths)
        self.max_tokens = max_tokens
        self.seed = seed
        self.dp_size, self.grad_accum, self.rank = dp_size, grad_accum, rank
        self.epoch = 0
        # The number of batches depends on the sorted lengths only, not on how ties are broken.
        self.num_global_batches = len(pack_token_budget(self.lengths, max_tokens, torch.Generator().manual_seed(0)))

    def global_batches(self) -> list[list[int]]:
        """This epoch's optimizer steps, in order, each a list of sentence indices (the same on every rank)."""
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        batches = pack_token_budget(self.lengths, self.max_tokens, generator)
        order = torch.randperm(len(batches), generator=generator).tolist()
        first = order.index(0)  # batch 0 holds the longest sentence
        order[0], order[first] = order[first], order[0]
        return [batches[i] for i in order]

    def __iter__(self):
        groups = self.dp_size * self.grad_accum
        for batch in self.global_batches():
            # Group k is micro-batch slot k // dp_size of rank k % dp_size.
            for slot in range(self.grad_accum):
                yield batch[slot * self.dp_size + self.rank :: groups]

    def __len__(self) -> int:
        return self.num_global_batches * self.grad_accum
