"""The recipe as a pydantic model: every key, its type or choices, default, bounds and description; the rules
between keys are `model_validator`s. Sections are in `sections.py`; loading and saving in `schema.py`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from nertune.recipe.hpo_space import check_hpo_section, hpo_section_model, search_space
from nertune.recipe.sections import DataConfig, HpoSettings, LoraSection, Section


def _search(search: str, training_argument: str | None = None, **more: object) -> dict:
    """`json_schema_extra` of a field `nertune hpo` can search (see hpo_space.py)."""
    return {"hpo": {"search": search, "training_argument": training_argument, **more}}


class Recipe(Section):
    """What a run is: the model, the data, and every hyperparameter."""

    model_name_or_path: str = Field("", description="a local model dir, pkg://<package>/<path>, or a Hub name")
    output_dir: str | None = Field(None, description="where the run is written; unset: runs/<recipe file stem>")
    data: DataConfig = Field(default_factory=DataConfig, description="the data section")
    lora: LoraSection = Field(default_factory=LoraSection, description="the LoRA section")
    hpo: HpoSection = Field(default_factory=lambda: HpoSection(), description="used by `nertune hpo` only")

    # Tokenisation and alignment.
    max_length: int = Field(128, ge=8, description="sub-tokens per window, special tokens included")
    window_overlap: int = Field(
        32, ge=0, description="sub-tokens shared by consecutive windows of a long sentence (< max_length/2)"
    )
    label_all_subtokens: bool = Field(False, description="false: the first sub-token carries the label, others -100")
    context_size: int = Field(
        0,
        ge=0,
        description="document context (FLERT): up to this many sub-tokens of the neighbouring text of the same "
        "document on each side of a sentence, read but never labelled; 0: off",
    )

    # Classifier head.
    head: Literal["linear", "crf", "span"] = Field(
        "linear",
        description="linear (softmax per word) | crf (linear-chain CRF over the words, constrained Viterbi) | "
        "span (every word span up to span_max_width classified: nested entities)",
    )
    head_bias_init: Literal["prior", "zero"] = Field(
        "prior",
        description="a fresh head: prior = each label's output bias starts at the log of its share of the "
        "training labels (head=span: each class's share of the training candidate spans), so the first steps "
        "learn entities instead of the label distribution; zero = transformers' initialisation",
    )
    classifier_learning_rate: float | None = Field(
        None,
        gt=0,
        description="head=linear|crf: learning rate of the output layer (fresh weights that may learn faster "
        "than the pretrained encoder; under LoRA the copy peft trains); unset: learning_rate",
    )
    crf_learning_rate: float | None = Field(
        None, gt=0, description="head=crf: learning rate of the CRF scores; unset: learning_rate"
    )

    span_max_width: int = Field(8, ge=1, le=16, description="head=span: the longest entity it can find, in words")
    span_learning_rate: float | None = Field(
        1e-3, gt=0, description="head=span: learning rate of the span scorer (a fresh module); null: learning_rate"
    )

    # Optimisation; the order of the searchable keys is the order a trial draws them.
    learning_rate: float = Field(
        5e-5, ge=0, description="peak learning rate", json_schema_extra=_search("range", "learning_rate", log=True)
    )
    num_train_epochs: float = Field(
        3.0,
        gt=0,
        description="epochs (max_steps > 0 takes precedence)",
        json_schema_extra=_search("range", "num_train_epochs", integers=True),
    )
    max_steps: int = Field(-1, description="optimizer steps; -1: from num_train_epochs")
    # transformers 5: warmup_steps < 1 is a fraction of the total steps, i.e. the recipe's warmup_ratio.
    warmup_ratio: float = Field(
        0.1, ge=0, lt=1, description="share of steps warming up", json_schema_extra=_search("range", "warmup_steps")
    )
    weight_decay: float = Field(
        0.01, ge=0, description="AdamW weight decay", json_schema_extra=_search("range", "weight_decay")
    )
    lr_scheduler_type: str = Field("linear", description="any TrainingArguments scheduler")
    optim: str = Field("adamw_torch_fused", description="any TrainingArguments optimizer; fused: one kernel per step")
    per_device_train_batch_size: int = Field(
        16,
        ge=1,
        description="sentences (windows) per device and micro-batch",
        json_schema_extra=_search("choice", "per_device_train_batch_size"),
    )
    per_device_eval_batch_size: int = Field(64, ge=1, description="sentences (windows) per device in evaluation")
    gradient_accumulation_steps: int = Field(1, ge=1, description="micro-batches per optimizer step")
    global_batch_size: int | None = Field(
        None,
        ge=1,
        description="sentences per optimizer step over all processes: accumulation is derived from the world "
        "size and per_device_train_batch_size becomes the largest micro-batch, so a run gives the same result "
        "on 1, 2 or 8 GPUs",
    )
    max_grad_norm: float = Field(1.0, description="gradient clipping")
    seed: int = Field(42, description="seed of model initialisation and data order")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16/fp16 on GPUs that have it"
    )
    group_by_length: bool = Field(True, description="batch sentences of similar length")
    max_tokens_per_batch: int | None = Field(
        None,
        description="padded sub-tokens per optimizer step over all processes (similar-length sentences, many "
        "short ones per step; at least 2 x max_length); unset: off",
    )
    packing: bool = Field(
        False,
        description="training micro-batches packed several sentences to a row of up to max_length sub-tokens "
        "(attention kept within each sentence, positions restarting): no padding, the same loss; head=linear only",
    )

    # Evaluation, checkpoints, logging.
    eval_strategy: Literal["epoch", "steps", "no"] = Field("epoch", description="when to evaluate on validation")
    eval_steps: int | None = Field(None, description="eval_strategy=steps: every this many steps")
    save_strategy: Literal["epoch", "steps", "no", "best"] = Field("epoch", description="when to save checkpoints")
    save_steps: int | None = Field(None, description="save_strategy=steps: every this many steps")
    save_total_limit: int | None = Field(2, description="checkpoints kept")
    load_best_model_at_end: bool = Field(True, description="best = highest validation entity F1")
    early_stopping_patience: int | None = Field(None, description="evaluations without improvement before stopping")
    logging_steps: int = Field(50, description="log every this many steps")
    report_to: str = Field("auto", description="auto: tensorboard when installed | none | tensorboard | wandb ...")
    resume_from_checkpoint: str | None = Field(
        None, description='a checkpoint dir, or "latest" for the newest in output_dir'
    )
    strict_metrics: bool = Field(False, description="seqeval strict mode (IOB2/BIOES)")
    dataloader_num_workers: int = Field(0, ge=0, description="data loader worker processes")

    label_mismatch: Literal["error", "reset", "extend"] = Field(
        "error",
        description="continuing from a fine-tuned model whose labels differ: an error, reset the classifier "
        "head, or extend it (new labels appended, the old labels' weights kept)",
    )

    # Hugging Face Hub: push the finished run (model, tokenizer, model card, metrics; no checkpoints).
    push_to_hub: bool = Field(False, description="push the finished run to the Hub")
    hub_model_id: str | None = Field(None, description="owner/name on the Hub")
    hub_private: bool = Field(False, description="create the Hub repository private")

    @model_validator(mode="after")
    def _keys_that_depend_on_each_other(self) -> Recipe:
        if self.window_overlap >= self.max_length // 2:
            raise ValueError(
                f"recipe key 'window_overlap' must be in [0, max_length/2), got {self.window_overlap} "
                f"with max_length={self.max_length}"
            )
        if self.context_size >= self.max_length:
            raise ValueError(
                f"recipe key 'context_size' must be in [0, max_length), got {self.context_size} "
                f"with max_length={self.max_length} (it counts sub-tokens on each side of a sentence)"
            )
        if self.max_tokens_per_batch is not None and self.max_tokens_per_batch < 2 * self.max_length:
            raise ValueError(
                f"recipe key 'max_tokens_per_batch' must be at least 2 x max_length = "
                f"{2 * self.max_length}, got {self.max_tokens_per_batch}"
            )
        if self.global_batch_size is not None and self.gradient_accumulation_steps != 1:
            raise ValueError(
                "recipe keys 'global_batch_size' and 'gradient_accumulation_steps' exclude each other: "
                "with global_batch_size, accumulation is derived from the number of processes"
            )
        if self.packing and self.head != "linear":
            raise ValueError(
                f"recipe key 'packing': packing=true needs head=linear (head={self.head} reads a whole row)"
            )
        if self.head != "linear" and self.lora.enabled:
            raise ValueError(
                f"recipe key 'head': head={self.head} is not supported with lora.enabled=true (the adapter "
                "would not save the head's own weights); use full fine-tuning or head=linear"
            )
        if self.classifier_learning_rate is not None and self.head == "span":
            raise ValueError(
                "recipe key 'classifier_learning_rate': head=span has no output layer of that kind, its span "
                "scorer trains at span_learning_rate; set classifier_learning_rate=null"
            )
        if self.head == "span" and self.label_all_subtokens:
            raise ValueError("recipe key 'label_all_subtokens': head=span reads each word at its first sub-token")
        check_hpo_section(self)
        return self


# Keyed by dotted recipe key; the `hpo` section has one range or choice list per entry.
HPO_SPACE = search_space(Recipe)
HpoSection = hpo_section_model(HpoSettings, HPO_SPACE)
Recipe.model_rebuild()
