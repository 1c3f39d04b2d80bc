"""`NerTrainer`: the Hugging Face Trainer subclass every training run (and HPO trial) uses."""

from __future__ import annotations

import torch
from transformers import Trainer

from .align import IGNORE_INDEX
from .distributed import LengthGroupedEpochSampler


class NerTrainer(Trainer):
    """Trainer whose results do not depend on the number of processes or on gradient accumulation.

    - Evaluation batches come in dataset order: transformers 5 length-groups (shuffles) them too when
      `train_sampling_strategy="group_by_length"`, but every row must map back to its sentence. With
      several processes accelerate deals the sequential batches round-robin and `gather_for_metrics`
      restores the order and drops the rows it repeated to even out the last batch.
    - Training batches are length-grouped by the global batch with a seed-and-epoch order
      (`LengthGroupedEpochSampler`), so every optimizer step sees the same sentences on 1 or N processes.
    - The training loss is the token mean over the whole optimizer step (all micro-batches, all
      processes). HF token-classification models take `num_items_in_batch` but ignore it and return
      their batch mean, which the Trainer then multiplies by the world size and does not divide by the
      accumulation steps: the logged loss and the gradients came out N times too large.
    - The evaluation loss is the token mean over the whole split (see `compact_logits`).
    """

    def _get_train_sampler(self, train_dataset=None):
        dataset = self.train_dataset if train_dataset is None else train_dataset
        # (The Trainer has already dropped our `length` column here: it is not a model input.)
        if self.args.train_sampling_strategy == "group_by_length" and "input_ids" in getattr(dataset, "column_names", ()):
            global_batch = self.args.train_batch_size * self.args.gradient_accumulation_steps * self.args.world_size
            seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
            return LengthGroupedEpochSampler(global_batch, [len(ids) for ids in dataset["input_ids"]], seed)
        return super()._get_train_sampler(train_dataset)

    def _get_eval_sampler(self, eval_dataset):
        if self.args.world_size <= 1:
            return torch.utils.data.SequentialSampler(eval_dataset)
        return None  # accelerate shards a sequential loader itself

    def evaluation_loop(self, *args, **kwargs):
        output = super().evaluation_loop(*args, **kwargs)
        prefix = kwargs.get("metric_key_prefix", "eval")
        token_loss = output.metrics.pop(f"{prefix}_token_loss", None)
        if token_loss is not None:  # the exact split-wide token mean (compact_logits) replaces the batch means
            output.metrics[f"{prefix}_loss"] = token_loss
        return output

    crf_learning_rate: float | None = None  # head=crf: the CRF's own learning rate (None: learning_rate)

    def create_optimizer(self, model=None):
        optimizer = super().create_optimizer(model)
        crf = model_crf(self.model if model is None else model)
        if crf is not None and self.crf_learning_rate is not None and not any(
                group.get("nertune_crf") for group in optimizer.param_groups):
            # The CRF's few scores start at 0 and learn far slower than the encoder at a fine-tuning rate.
            crf_params = {id(p) for p in crf.parameters()}
            for group in optimizer.param_groups:
                group["params"] = [p for p in group["params"] if id(p) not in crf_params]
            optimizer.add_param_group({"params": list(crf.parameters()), "lr": self.crf_learning_rate,
                                       "weight_decay": 0.0, "nertune_crf": True})
        return optimizer

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        logits = outputs["logits"]
        crf = model_crf(model)
        if crf is not None:  # head=crf: the CRF's negative log-likelihood of each row's labelled words, summed
            token_loss = crf.neg_log_likelihood(logits, labels)
        else:
            token_loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1).to(logits.device),
                ignore_index=IGNORE_INDEX, reduction="sum",
            )
        if model.training and num_items_in_batch is not None:
            # num_items_in_batch counts the labelled tokens of the optimizer step: on every process when
            # average_tokens_across_devices, and DDP then averages the processes' gradients, hence the factor.
            scale = self.accelerator.num_processes if self.args.average_tokens_across_devices else 1
            loss = token_loss * scale / num_items_in_batch
        else:  # evaluation (or no token count): the mean over this batch, as the model's own loss
            loss = token_loss / labels.ne(IGNORE_INDEX).sum().clamp(min=1)
        return (loss, outputs) if return_outputs else loss


def model_crf(model):
    """The CRF head (`head: crf`) of a model, through DDP/accelerate wrappers; None for a linear head."""
    while hasattr(model, "module") and isinstance(model.module, torch.nn.Module):
        model = model.module
    return getattr(model, "crf", None)
