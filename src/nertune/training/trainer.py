"""`NerTrainer`: the Hugging Face Trainer subclass every training run (and HPO trial) uses."""

from __future__ import annotations

from typing import Any

import torch
from transformers import Trainer

from nertune.data.align import IGNORE_INDEX
from nertune.distributed import LengthGroupedEpochSampler, TokenBudgetBatchSampler
from nertune.errors import ModelError
from nertune.heads import Head
from nertune.model.packing import cheapest_row_tokens, pack_group, pack_rows, position_offset
from nertune.model.settings import head_of
from nertune.training.embedding_grad import reuse_word_embedding_grad


class PackingCollator:
    """Training micro-batches without padding between sentences: the batch's windows packed several to a row
    (`model.packing.pack_group`: block-diagonal attention mask, positions restarting in every window, labels
    padded with -100), each row up to `row_tokens` sub-tokens (the row length that costs least,
    `cheapest_row_tokens`). The batch holds the same sentences and labelled tokens as its padded form, so
    the loss (a token sum over the step, `NerTrainer.compute_loss`) is the same."""

    def __init__(self, pad_token_id: int | None, row_tokens: int, first_position: int, mask_dtype: torch.dtype):
        self.pad_token_id = pad_token_id
        self.row_tokens = row_tokens
        self.first_position = first_position
        self.mask_dtype = mask_dtype

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        columns = {key: [list(f[key]) for f in features] for key in ("input_ids", "token_type_ids", "labels")}
        columns = {key: rows for key, rows in columns.items() if all(rows)}
        lengths = [len(ids) for ids in columns["input_ids"]]
        row_tokens = cheapest_row_tokens(lengths, max(self.row_tokens, max(lengths)), len(lengths))
        rows = pack_rows(lengths, row_tokens)
        _, batch = pack_group(
            columns, rows, self.pad_token_id, torch.device("cpu"), self.mask_dtype, self.first_position
        )
        return batch


def packing_collator(model: torch.nn.Module, pad_token_id: int | None, row_tokens: int) -> PackingCollator:
    """The `PackingCollator` for this model: a boolean mask for SDPA (any autocast dtype), additive float32
    for eager attention; positions from the model's own first position id (RoBERTa's padding_idx + 1)."""
    attention = getattr(model.config, "_attn_implementation", "eager")
    if attention not in ("sdpa", "eager"):
        raise ModelError(
            f"recipe key 'packing': the model's attention implementation {attention!r} takes no block-diagonal "
            "mask; use packing=false (or attn_implementation sdpa/eager)"
        )
    mask_dtype = torch.bool if attention == "sdpa" else torch.float32
    return PackingCollator(pad_token_id, row_tokens, position_offset(model), mask_dtype)


class NerTrainer(Trainer):
    """Trainer whose results do not depend on the number of processes or on gradient accumulation.

    `head` (`heads.Head`; default: the one the model's config.json names) computes the loss, decides what
    evaluation keeps of the logits (the default `preprocess_logits_for_metrics`) and may add optimizer
    parameter groups (its own learning rate).

    - Evaluation batches come in dataset order: transformers 5 length-groups (shuffles) them too when
      `train_sampling_strategy="group_by_length"`, but every row must map back to its sentence. With
      several processes accelerate deals the sequential batches round-robin and `gather_for_metrics`
      restores the order and drops the rows it repeated to even out the last batch.
    - Training batches are length-grouped by the global batch with a seed-and-epoch order
      (`LengthGroupedEpochSampler`), so every optimizer step sees the same sentences on 1 or N processes.
      With `max_tokens_per_batch`, an optimizer step is instead a padded-token budget of similar-length
      sentences (`TokenBudgetBatchSampler`, same guarantee).
    - The training loss is the token mean over the whole optimizer step (all micro-batches, all
      processes). HF token-classification models take `num_items_in_batch` but ignore it and return
      their batch mean, which the Trainer then multiplies by the world size and does not divide by the
      accumulation steps: the logged loss and the gradients came out N times too large.
    - With `packing_row_tokens`, a training micro-batch holds the same sentences, packed several to a row
      (`PackingCollator`): no padding between sentences, the same token-mean loss.
    - The evaluation loss is the token mean over the whole split (the head's `eval_loss`, reported by
      `compute_metrics` as `token_loss`).
    """

    def __init__(
        self,
        *args: Any,
        head: Head | None = None,
        max_tokens_per_batch: int | None = None,
        packing_row_tokens: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.max_tokens_per_batch = max_tokens_per_batch
        self.packing_row_tokens = packing_row_tokens
        self.head = head if head is not None else head_of(self.model)
        if self.model is not None:  # under model_init the model comes later: `compute_loss` binds it
            self.head.bind(self.model)
        if self.preprocess_logits_for_metrics is None:
            self.preprocess_logits_for_metrics = self.head.preprocess_logits_for_metrics

    # The samplers: transformers 5 has public `get_train_dataloader`/`get_eval_dataloader`, but they build the
    # loader through the private `_get_dataloader` (column removal, worker seeding, accelerate), which an
    # override would have to copy; the private sampler hooks are the smaller dependency.

    def _get_train_sampler(self, train_dataset=None):
        dataset = self.train_dataset if train_dataset is None else train_dataset
        # (The Trainer has already dropped our `length` column here: it is not a model input.)
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        if self.max_tokens_per_batch is not None:
            return TokenBudgetBatchSampler(
                [len(ids) for ids in dataset["input_ids"]],
                self.max_tokens_per_batch,
                seed,
                dp_size=self.args.world_size,
                grad_accum=self.args.gradient_accumulation_steps,
                rank=self.args.process_index,
            )
        if self.args.train_sampling_strategy == "group_by_length" and "input_ids" in getattr(
            dataset, "column_names", ()
        ):
            global_batch = self.args.train_batch_size * self.args.gradient_accumulation_steps * self.args.world_size
            return LengthGroupedEpochSampler(global_batch, [len(ids) for ids in dataset["input_ids"]], seed)
        return super()._get_train_sampler(train_dataset)

    def get_train_dataloader(self):
        """With `packing_row_tokens`, training batches are packed (`PackingCollator`); evaluation stays padded,
        one sentence per row, since every row must map back to its sentence."""
        if self.packing_row_tokens is None:
            return super().get_train_dataloader()
        padded = self.data_collator
        pad_token_id = getattr(self.processing_class, "pad_token_id", None)
        self.data_collator = packing_collator(self.model, pad_token_id, self.packing_row_tokens)
        try:
            return super().get_train_dataloader()
        finally:
            self.data_collator = padded

    def _get_eval_sampler(self, eval_dataset):
        if self.args.world_size <= 1:
            return torch.utils.data.SequentialSampler(eval_dataset)
        return None  # accelerate shards a sequential loader itself

    def evaluation_loop(self, *args, **kwargs):
        output = super().evaluation_loop(*args, **kwargs)
        prefix = kwargs.get("metric_key_prefix", "eval")
        token_loss = output.metrics.pop(f"{prefix}_token_loss", None)
        if token_loss is not None:  # the exact split-wide token mean (the head's eval_loss) replaces the batch means
            output.metrics[f"{prefix}_loss"] = token_loss
        return output

    def create_optimizer(self, model=None):
        if self.args.world_size == 1 and not (self.is_deepspeed_enabled or self.is_fsdp_enabled):
            # One process only: DDP, FSDP and DeepSpeed reduce gradients through their own hooks and buffers.
            reuse_word_embedding_grad(self.model if model is None else model)
        optimizer = super().create_optimizer(model)
        groups = self.head.bind(self.model if model is None else model).param_groups()
        if groups and not any(group.get("nertune_head") for group in optimizer.param_groups):
            own = {id(p) for group in groups for p in group["params"]}
            for group in optimizer.param_groups:
                group["params"] = [p for p in group["params"] if id(p) not in own]
            for group in groups:
                optimizer.add_param_group({**group, "nertune_head": True})
        return optimizer

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        token_loss = self.head.bind(model).loss(outputs["logits"], labels)  # summed over the labelled sub-tokens
        if model.training and num_items_in_batch is not None:
            # num_items_in_batch counts the labelled tokens of the optimizer step: on every process when
            # average_tokens_across_devices, and DDP then averages the processes' gradients, hence the factor.
            scale = self.accelerator.num_processes if self.args.average_tokens_across_devices else 1
            loss = token_loss * scale / num_items_in_batch
        else:  # evaluation (or no token count): the mean over this batch, as the model's own loss
            loss = token_loss / labels.ne(IGNORE_INDEX).sum().clamp(min=1)
        return (loss, outputs) if return_outputs else loss
