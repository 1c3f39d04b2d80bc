"""The training story, top to bottom: recipe -> data -> alignment -> model -> Trainer -> metrics -> files."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from datasets import DatasetDict
from transformers import DataCollatorForTokenClassification, EarlyStoppingCallback, TrainingArguments, set_seed
from transformers.trainer_utils import get_last_checkpoint

from nertune.data import DataError, detect_language, load_splits
from nertune.data.align import encode_split
from nertune.distributed import batch_layout, check_world_size
from nertune.evaluation.calibration import calibrate_trained_model
from nertune.evaluation.report import plot_learning_curves
from nertune.evaluation.run import write_conll_predictions, write_json
from nertune.heads import head_for_recipe
from nertune.hub.push import check_hub_access, push_run, write_model_card
from nertune.model.loading import (
    is_adapter_dir,
    load_model_config,
    load_tokenizer,
    reconcile_labels,
    resolve_model_path,
    resolve_precision,
    trained_labels,
)
from nertune.model.lora import (
    adapter_base_reference,
    adapter_size_bytes,
    merge_adapter,
    save_adapter_info,
    trainable_parameters,
)
from nertune.model.references import RECIPE_FILE
from nertune.recipe.schema import Recipe, RecipeError, save_recipe
from nertune.schemes import build_label_list
from nertune.training.continuation import continued_run_metrics, evaluate_starting_model
from nertune.training.model_setup import build_model, model_settings
from nertune.training.predict import decode_split, decoded_scores, make_compute_metrics, span_gold
from nertune.training.report_to import TENSORBOARD_DIR, _report_to, _without_tensorboard
from nertune.training.trainer import NerTrainer

logger = logging.getLogger(__name__)


def build_training_arguments(recipe: Recipe, precision: str) -> TrainingArguments:
    """The recipe as TrainingArguments; building them sets up torch.distributed when launched on N processes."""
    evaluate = recipe.eval_strategy != "no"
    save_strategy = recipe.save_strategy
    if recipe.load_best_model_at_end and evaluate and save_strategy != "no":
        save_strategy = recipe.eval_strategy  # the Trainer needs a checkpoint at every evaluation to pick the best
    args = TrainingArguments(
        output_dir=str(Path(recipe.output_dir) / "checkpoints"),
        num_train_epochs=recipe.num_train_epochs,
        max_steps=recipe.max_steps,
        learning_rate=recipe.learning_rate,
        weight_decay=recipe.weight_decay,
        warmup_steps=recipe.warmup_ratio,  # transformers 5: a float < 1 is a fraction of the total steps
        lr_scheduler_type=recipe.lr_scheduler_type,
        per_device_train_batch_size=recipe.per_device_train_batch_size,
        per_device_eval_batch_size=recipe.per_device_eval_batch_size,
        gradient_accumulation_steps=recipe.gradient_accumulation_steps,
        max_grad_norm=recipe.max_grad_norm,
        optim=recipe.optim,
        seed=recipe.seed,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        train_sampling_strategy="group_by_length" if recipe.group_by_length else "random",
        eval_strategy=recipe.eval_strategy,
        eval_steps=recipe.eval_steps,
        save_strategy=save_strategy,
        save_steps=recipe.save_steps,
        save_total_limit=recipe.save_total_limit,
        load_best_model_at_end=recipe.load_best_model_at_end and evaluate and save_strategy != "no",
        metric_for_best_model="f1",
        greater_is_better=True,
        logging_steps=recipe.logging_steps,
        report_to=_without_tensorboard(_report_to(recipe.report_to))[0],
        dataloader_num_workers=recipe.dataloader_num_workers,
        use_cpu=not torch.cuda.is_available(),
        # Token mean over all processes (NerTrainer.compute_loss): gradients and logged loss as on one process.
        average_tokens_across_devices=True,
        # A token-classification model uses every trainable parameter in each step (no pooler; with LoRA the
        # frozen weights are not tracked), so DDP can skip the extra autograd traversal it otherwise warns about.
        ddp_find_unused_parameters=False,
    )
    # The world size is known only now; a global batch is split into per-device batch x accumulation.
    args.per_device_train_batch_size, args.gradient_accumulation_steps = batch_layout(
        recipe.per_device_train_batch_size,
        recipe.gradient_accumulation_steps,
        recipe.global_batch_size,
        args.world_size,
    )
    return args


def _resume_checkpoint(recipe: Recipe) -> str | None:
    if recipe.resume_from_checkpoint in (None, ""):
        return None
    if recipe.resume_from_checkpoint == "latest":
        checkpoint_dir = Path(recipe.output_dir) / "checkpoints"
        last = get_last_checkpoint(str(checkpoint_dir)) if checkpoint_dir.is_dir() else None
        if last is None:
            raise RecipeError(f"resume_from_checkpoint=latest: no checkpoint in {checkpoint_dir}")
        return last
    if not Path(recipe.resume_from_checkpoint).is_dir():
        raise RecipeError(f"resume_from_checkpoint: {recipe.resume_from_checkpoint} is not a directory")
    return recipe.resume_from_checkpoint


@dataclass
class PreparedData:
    """Everything the Trainer needs from the data: labels, tokenizer, encoded splits, gold tags."""

    splits: DatasetDict
    source_scheme: str
    scheme: str
    labels: list[str]
    keep_head: bool
    label2id: dict[str, int]
    id2label: dict[int, str]
    tokenizer: Any
    train_features: Any
    eval_features: dict[str, Any]
    gold: dict[str, list[list[str]]]
    start_labels: list[str] | None = None  # the labels of the fine-tuned model training continues from
    spans: dict[str, list | None] | None = None  # gold entities of every level (`predict.span_gold`), by split
    span_stats: dict | None = None  # what aligning character spans changed, by data file key (`SpanStats`)


def prepare_data(recipe: Recipe, model_path: str) -> PreparedData:
    """Load the splits, build and reconcile the label list, tokenize and align every split."""
    span_stats: dict = {}
    splits, source_scheme = load_splits(recipe.data, span_stats=span_stats)
    scheme = recipe.data.train_scheme
    nested = splits["train"]["spans"] if "spans" in splits["train"].column_names else []
    inner = [[f"B-{s['type']}" for s in spans or []] for spans in nested]  # inner levels' types are labels too
    labels = build_label_list(list(splits["train"]["ner_tags"]) + inner, scheme)
    start_labels = trained_labels(load_model_config(model_path))
    labels, keep_head = reconcile_labels(labels, model_path, recipe.label_mismatch)
    label2id = {label: i for i, label in enumerate(labels)}
    id2label = dict(enumerate(labels))
    logger.info(
        "data: %s tags read as %s, trained as %s; %d labels; %s",
        source_scheme,
        source_scheme,
        scheme,
        len(labels),
        {k: len(v) for k, v in splits.items()},
    )

    if recipe.context_size and not any(splits["train"]["document_id"]):
        raise DataError(
            f"context_size={recipe.context_size} needs documents, but the training data has no "
            "-DOCSTART- lines or document_id values; set context_size=0 or mark the documents"
        )
    tokenizer = load_tokenizer(model_path)
    encode = dict(
        tokenizer=tokenizer,
        max_length=recipe.max_length,
        window_overlap=recipe.window_overlap,
        label2id=label2id,
        scheme=scheme,
        context_size=recipe.context_size,
    )
    head = head_for_recipe(recipe, scheme)  # a head may train on labels of its own (`Head.encode_labels`)
    train_features = encode_split(splits["train"], label_all_subtokens=recipe.label_all_subtokens, **encode)
    train_features = head.encode_labels(train_features, splits["train"], labels)
    names = ("validation", "test")
    eval_features = {
        n: head.encode_labels(encode_split(splits[n], sort_by_length=True, **encode), splits[n], labels) for n in names
    }
    gold = {name: splits[name]["ner_tags"] for name in names}
    return PreparedData(
        splits,
        source_scheme,
        scheme,
        labels,
        keep_head,
        label2id,
        id2label,
        tokenizer,
        train_features,
        eval_features,
        gold,
        start_labels,
        {name: span_gold(head, splits[name], scheme) for name in names},
        {key: stats.as_metrics() for key, stats in span_stats.items()},
    )


def build_trainer(
    recipe: Recipe, args: TrainingArguments, data: PreparedData, model=None, model_init=None
) -> NerTrainer:
    """The NerTrainer of `run_training` (validation F1 as metric); `model_init` instead of `model` for HPO."""
    callbacks = []
    if _without_tensorboard(_report_to(recipe.report_to))[1]:
        from transformers.integrations import TensorBoardCallback

        tensorboard = TensorBoardCallback()
        tensorboard.logging_dir = str(Path(recipe.output_dir) / TENSORBOARD_DIR)
        callbacks.append(tensorboard)
    if recipe.early_stopping_patience is not None:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=recipe.early_stopping_patience))
    head = head_for_recipe(recipe, data.scheme)
    trainer = NerTrainer(
        model=model,
        model_init=model_init,
        args=args,
        train_dataset=data.train_features,
        eval_dataset=data.eval_features["validation"],
        data_collator=DataCollatorForTokenClassification(
            data.tokenizer, pad_to_multiple_of=8 if torch.cuda.is_available() else None
        ),
        processing_class=data.tokenizer,
        compute_metrics=make_compute_metrics(
            data.eval_features["validation"],
            data.gold["validation"],
            data.id2label,
            data.scheme,
            recipe.strict_metrics,
            head,
            lambda: trainer.model,
            data.spans["validation"],
        ),  # model_init builds it later
        callbacks=callbacks,
        head=head,
        max_tokens_per_batch=recipe.max_tokens_per_batch,
        packing_row_tokens=recipe.max_length if recipe.packing else None,
    )
    return trainer


@dataclass
class RunSetup:
    """What `run_training` and `run_hpo` fix before any training time is spent."""

    precision: str
    args: TrainingArguments
    is_main: bool  # process 0: the one that writes files
    model_path: str
    resume: str | None  # checkpoint to resume from
    hub_api: Any  # a checked HfApi when the recipe pushes to the Hub (process 0 only), else None
    data: PreparedData


def setup_run(recipe: Recipe) -> RunSetup:
    """Everything that can fail on bad input, in order: precision, TrainingArguments (which set up
    torch.distributed when launched on N processes), world size, model path, resume checkpoint, Hub access, data."""
    precision = resolve_precision(recipe.precision)
    args = build_training_arguments(recipe, precision)
    check_world_size(args.world_size)
    is_main = args.process_index == 0
    model_path = resolve_model_path(recipe.model_name_or_path)  # a LoRA adapter dir continues (build_model)
    resume = _resume_checkpoint(recipe)
    hub_api = check_hub_access(recipe.hub_model_id) if recipe.push_to_hub and is_main else None
    data = prepare_data(recipe, model_path)
    return RunSetup(precision, args, is_main, model_path, resume, hub_api, data)


def run_training(recipe: Recipe) -> dict:
    """Train, pick the best checkpoint by validation F1, score validation and test, write the run dir.

    Launched on N processes (`accelerate launch`, `torchrun`), every process trains, evaluates and
    predicts (the Trainer's collectives need all of them); only process 0 writes files.
    """
    output_dir = Path(recipe.output_dir)
    run = setup_run(recipe)  # everything that can fail on bad input fails here, before any training time is spent
    precision, args, is_main, model_path, resume, hub_api, data = (
        run.precision,
        run.args,
        run.is_main,
        run.model_path,
        run.resume,
        run.hub_api,
        run.data,
    )
    if is_main:
        output_dir.mkdir(parents=True, exist_ok=True)
        save_recipe(recipe, output_dir / RECIPE_FILE)
    splits, source_scheme, scheme, labels = data.splits, data.source_scheme, data.scheme, data.labels
    id2label, train_features, eval_features, gold = data.id2label, data.train_features, data.eval_features, data.gold

    before = evaluate_starting_model(args, data, model_path) if data.start_labels is not None else None
    set_seed(recipe.seed)  # here: setting up N processes may draw random numbers; the new head must not differ
    model = build_model(recipe, model_path, data)
    trainable, total = trainable_parameters(model)
    trainer = build_trainer(recipe, args, data, model=model)
    global_batch = args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
    logger.info(
        "training on %s (%s) x %d processes, %d train windows from %d sentences; global batch %d = "
        "%d per device x %d accumulation x %d processes; %d of %d parameters trainable (%.2f%%)",
        args.device,
        precision,
        args.world_size,
        len(train_features),
        len(splits["train"]),
        global_batch,
        args.per_device_train_batch_size,
        args.gradient_accumulation_steps,
        args.world_size,
        trainable,
        total,
        100 * trainable / total,
    )
    started = time.perf_counter()
    train_result = trainer.train(resume_from_checkpoint=resume)
    train_seconds = time.perf_counter() - started
    # The best model when load_best_model_at_end: a full model dir with id2label in config.json, or with LoRA
    # an adapter dir (the Trainer writes on process 0 only).
    trainer.save_model(str(output_dir))
    if is_main:
        trainer.state.save_to_json(str(output_dir / "trainer_state.json"))  # loss and F1 curves next to the model
        if recipe.lora.enabled:
            base = adapter_base_reference(model_path) if is_adapter_dir(model_path) else recipe.model_name_or_path
            section = model_settings(recipe, model_path, data).to_dict()
            save_adapter_info(output_dir, base, id2label, section)
        plot_learning_curves(output_dir / "trainer_state.json", output_dir / "learning_curves.png")
    calibration = None  # LoRA runs (adapter dirs) are not calibrated yet
    if is_main and not recipe.lora.enabled and trainer.head.calibrated_by_temperature:  # temperature -> config.json
        calibration = calibrate_trained_model(trainer.model, data.tokenizer, recipe, splits["validation"])

    metrics: dict = {
        "source_scheme": source_scheme,
        "train_scheme": scheme,
        "labels": labels,
        "precision_mode": precision,
        "device": str(args.device),
        "world_size": args.world_size,
        "global_batch_size": global_batch,
        "per_device_train_batch_size": args.per_device_train_batch_size,
        "gradient_accumulation_steps": args.gradient_accumulation_steps,
        "trainable_params": trainable,
        "trainable_percent": round(100 * trainable / total, 4),
        "train_runtime_s": round(train_seconds, 3),
        "train_samples_per_second": round(train_result.metrics.get("train_samples_per_second", 0.0), 3),
        "train_loss": train_result.metrics.get("train_loss"),
        "n_train_sentences": len(splits["train"]),
        "language": detect_language(splits["train"]["tokens"]),  # the model card's `language:` (None: not told)
        "data_spans": data.span_stats,  # per data file: words split at span boundaries, nested spans kept/dropped
    }
    if calibration is not None:
        metrics["calibration"] = calibration
    if torch.cuda.is_available():
        metrics["peak_gpu_memory_bytes"] = torch.cuda.max_memory_allocated()
    if recipe.lora.enabled and is_main:
        metrics["adapter_size_bytes"] = adapter_size_bytes(output_dir)
    reports = []
    for name in ("validation", "test"):
        n_words = [len(t) for t in gold[name]]
        # On every process: prediction is a collective (gather); calling it on process 0 alone deadlocks.
        decoded = decode_split(trainer, eval_features[name], n_words, labels)
        predicted = [d.tags for d in decoded]
        scores = decoded_scores(gold[name], data.spans[name], decoded, scheme, recipe.strict_metrics)
        reports.append(
            f"== {name}: entity level ==\n{scores.pop('entity_report')}\n"
            f"== {name}: token level ==\n{scores.pop('token_report')}"
        )
        for key in ("f1", "precision", "recall", "macro_f1", "accuracy"):
            metrics[f"{name}_{key}"] = scores[key]
        metrics[f"{name}_per_type"] = scores["per_type"]
        if "outer_level" in scores:  # scored on span sets: the counts, and the outer level's tags as seqeval reads them
            metrics[f"{name}_spans"] = {k: scores[k] for k in ("n_gold", "n_predicted", "n_nested_gold")}
            metrics[f"{name}_outer_level"] = scores["outer_level"]
        metrics[f"n_{name}_words_in_input"] = sum(n_words)
        metrics[f"n_{name}_words_predicted"] = sum(len(p) for p in predicted)
        if name == "test" and is_main:
            write_conll_predictions(output_dir / "test_predictions.conll", splits[name], gold[name], predicted)
        if name == "test" and before is not None:
            metrics.update(
                continued_run_metrics(recipe.model_name_or_path, data, before, predicted, recipe.strict_metrics)
            )

    if is_main:
        if recipe.lora.enabled and recipe.lora.merge:
            metrics["merged_model_dir"] = str(merge_adapter(output_dir, output_dir / "merged"))
        write_json(output_dir / "metrics.json", metrics)
        (output_dir / "report.txt").write_text("\n".join(reports), encoding="utf-8")
        write_model_card(output_dir, recipe.hub_model_id)
        if hub_api is not None:
            metrics["hub_commit"] = push_run(output_dir, recipe.hub_model_id, recipe.hub_private, api=hub_api)
        print("\n".join(reports))
        print(
            f"test entity F1 {metrics['test_f1']:.4f} | validation F1 {metrics['validation_f1']:.4f} | "
            f"trained {train_seconds:.1f}s on {args.world_size} process(es) | {output_dir}"
        )
    return metrics
