"""`make bench`: the project's training and inference paths against the plain recipes users copy.

In one process and one run, on the same model, data, hyperparameters and seed:
(a) training samples/s and tokens/s: `run_training` vs a plain `Trainer` as in transformers'
    `run_ner.py` (truncation at max_length, first-sub-token labels, `DataCollatorForTokenClassification`,
    fp32, random sampler);
(b) inference sentences/s: `NerPredictor` vs `pipeline("token-classification", aggregation_strategy="first")`
    at its best batch size, with a check that both find identical entities;
(c) test entity F1 of both trained models, so speed is never bought with accuracy: the mean over
    `f1_seeds` seeds (the recipe's seed, then the next ones), since one run's test F1 on a small test set
    moves by points from seed to seed;
(d) model FLOPs utilisation (`bench.mfu`) of training (both sides) and inference against a matmul peak
    measured in this run, and the same training comparison on a random bert-base-size encoder;
(e) time to target (`bench/train.py`): the baseline with run_ner.py's defaults sets a validation F1, the
    project's recipe is timed until it first reaches it, for each of the F1 seeds (the mean is the ratio's).
Both trainings of (a) skip evaluation and checkpoints, so the timings compare the same work.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from bench.inference import bench_inference, inference_options
from bench.mfu import bench_bert_base, measure_matmul_peak, mfu
from bench.render import markdown_table
from bench.train import run_ner_recipe, time_to_target
from nertune.data import load_splits
from nertune.evaluation.metrics import entity_metrics
from nertune.model.loading import load_tokenizer, resolve_model_path, resolve_precision
from nertune.recipe.schema import Recipe, load_recipe
from nertune.schemes import build_label_list

logger = logging.getLogger(__name__)


def train_tokens_per_sample(model_dir: str, splits) -> float:
    """The mean sub-tokens of a training sentence (special tokens included): samples/s times it is tokens/s,
    right for epochs and for max_steps runs alike."""
    lengths = [
        len(t)
        for t in load_tokenizer(model_dir)(list(splits["train"]["tokens"]), is_split_into_words=True)["input_ids"]
    ]
    return sum(lengths) / len(lengths)


def train_baseline(
    recipe: Recipe, splits, labels: list[str], output_dir: Path, score_splits: tuple[str, ...] = ("test",)
) -> dict:
    """The transformers-examples recipe, kept plain on purpose: this is what we are measured against.

    Returns samples/s, tokens/s, the training runtime and `<split>_f1` for each of `score_splits`."""
    from datasets import Dataset
    from transformers import (
        AutoModelForTokenClassification,
        DataCollatorForTokenClassification,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    set_seed(recipe.seed)
    model_path = resolve_model_path(recipe.model_name_or_path)
    tokenizer = load_tokenizer(model_path)
    label2id = {label: i for i, label in enumerate(labels)}

    def tokenize_and_align(split):
        enc = tokenizer(list(split["tokens"]), truncation=True, max_length=recipe.max_length, is_split_into_words=True)
        all_labels = []
        for i, tags in enumerate(split["ner_tags"]):
            previous, row = None, []
            for w in enc.word_ids(i):
                row.append(-100 if w is None or w == previous else label2id[tags[w]])
                previous = w
            all_labels.append(row)
        enc["labels"] = all_labels
        return Dataset.from_dict(dict(enc))

    train = tokenize_and_align(splits["train"])
    model = AutoModelForTokenClassification.from_pretrained(
        model_path, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label2id
    )
    args = TrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=recipe.num_train_epochs,
        max_steps=recipe.max_steps,
        learning_rate=recipe.learning_rate,
        weight_decay=recipe.weight_decay,
        warmup_steps=recipe.warmup_ratio,
        per_device_train_batch_size=recipe.per_device_train_batch_size,
        per_device_eval_batch_size=recipe.per_device_eval_batch_size,
        seed=recipe.seed,
        eval_strategy="no",
        save_strategy="no",
        report_to="none",
        logging_steps=recipe.logging_steps,
        use_cpu=not torch.cuda.is_available(),
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train,
        processing_class=tokenizer,
        data_collator=DataCollatorForTokenClassification(tokenizer),
    )
    result = trainer.train()
    mean_tokens = sum(len(ids) for ids in train["input_ids"]) / len(train)
    metrics = {
        "train_samples_per_second": result.metrics["train_samples_per_second"],
        "train_tokens_per_second": mean_tokens * result.metrics["train_samples_per_second"],
        "train_runtime_s": result.metrics["train_runtime"],
    }
    for name in score_splits:
        output = trainer.predict(tokenize_and_align(splits[name]))
        predicted = []
        for i, tags in enumerate(splits[name]["ner_tags"]):
            ids = output.predictions[i].argmax(-1)
            words = ["O"] * len(tags)  # words cut off by truncation stay O: run_ner.py never scores them
            first_positions = [p for p, label in enumerate(output.label_ids[i]) if label != -100]
            for word, position in enumerate(first_positions):  # the k-th labelled sub-token starts word k
                words[word] = labels[int(ids[position])]
            predicted.append(words)
        metrics[f"{name}_f1"] = entity_metrics(splits[name]["ner_tags"], predicted)["f1"]
    return metrics


def train_project(recipe: Recipe) -> dict:
    from nertune.training.run import run_training

    metrics = run_training(recipe)
    return {
        "train_samples_per_second": metrics["train_samples_per_second"],
        "train_runtime_s": metrics["train_runtime_s"],
        "test_f1": metrics["test_f1"],
    }


def measure_serving(model_dir: str, texts: list[str]) -> dict:
    """32 clients, one sentence per request, against the same predictor's offline batches (`serve_bench`);
    empty without the `serve` extra."""
    try:
        from bench.serving import bench_serving
    except ModuleNotFoundError as e:
        logger.info("no serving numbers: %s is not installed (pip install 'nertune[serve]')", e.name)
        return {}
    serving = bench_serving(model_dir, texts)
    return {
        "serving_efficiency": serving["serving_efficiency"],
        "serving_efficiency_rounds": serving["serving_efficiency_rounds"],
        "serving_offline_runs": serving["offline_runs"],
        "serving_sentences_per_second": serving["serving_sentences_per_second"],
        "serving_offline_sentences_per_second": serving["offline_sentences_per_second"],
        "serving_latency_p50_ms": serving["latency_p50_ms"],
        "serving_latency_p95_ms": serving["latency_p95_ms"],
        "serving_single_client_latency_ms": serving["single_client_latency_ms"],
        "serving_errors": serving["errors"],
    }


def run_bench(
    recipe_path: str | None,
    overrides: list[str] | None = None,
    target_eval_steps: int = 10,
    f1_seeds: int = 3,
    bert_base_steps: int = 0,
) -> dict:
    """Run every comparison of the module docstring; write bench.json and bench.md, print the table.

    `target_eval_steps`: optimizer steps between the project's validation evaluations while timing it to
    the baseline's F1 (the time to target is exact up to that many steps). `f1_seeds`: training runs per
    side whose test F1 is averaged (speeds come from the first). `bert_base_steps`: optimizer steps of each
    side on a random bert-base-size encoder (`bench.mfu.bench_bert_base`); 0 skips that part."""
    if f1_seeds < 1:
        raise ValueError(f"f1_seeds must be at least 1, got {f1_seeds}")
    recipe = load_recipe(
        recipe_path or "recipes/quickstart.yaml",
        [
            "output_dir=runs/bench",
            "eval_strategy=no",
            "save_strategy=no",
            "report_to=none",
            "load_best_model_at_end=false",
            *(overrides or []),
        ],
    )
    out = Path(recipe.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    precision = resolve_precision(recipe.precision)
    peak_dtype = torch.bfloat16 if precision == "bf16" else torch.float16 if precision == "fp16" else torch.float32
    peak = measure_matmul_peak(peak_dtype, device)

    splits, _ = load_splits(recipe.data)
    labels = build_label_list(splits["train"]["ner_tags"], recipe.data.train_scheme)
    baseline = train_baseline(recipe, splits, labels, out / "baseline")
    project = train_project(recipe.model_copy(update={"output_dir": str(out / "project")}))
    f1_runs = {"project": [project["test_f1"]], "baseline": [baseline["test_f1"]]}
    for seed in range(recipe.seed + 1, recipe.seed + f1_seeds):
        again = recipe.model_copy(update={"seed": seed, "output_dir": str(out / f"project-seed{seed}")})
        f1_runs["project"].append(train_project(again)["test_f1"])
        f1_runs["baseline"].append(train_baseline(again, splits, labels, out / f"baseline-seed{seed}")["test_f1"])
    run_ner = train_baseline(
        run_ner_recipe(recipe), splits, labels, out / "baseline-run-ner-defaults", score_splits=("validation", "test")
    )
    # Time to target over the same seeds as F1: where one run crosses the target moves by evaluations.
    to_target = [
        time_to_target(
            recipe.model_copy(update={"seed": seed, "output_dir": str(out / f"project-to-target-seed{seed}")}),
            run_ner["validation_f1"],
            target_eval_steps,
        )
        for seed in range(recipe.seed, recipe.seed + f1_seeds)
    ]
    to_target_seconds = [run["seconds"] for run in to_target]
    to_target_mean = None if None in to_target_seconds else sum(to_target_seconds) / f1_seeds
    inference = bench_inference(str(out / "project"), list(splits["test"]["tokens"]), list(splits["test"]["ner_tags"]))
    serving = measure_serving(str(out / "project"), [" ".join(tokens) for tokens in splits["test"]["tokens"]])

    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(out / "project")
    tokens_per_sample = train_tokens_per_sample(str(out / "project"), splits)
    tokens_per_second = tokens_per_sample * project["train_samples_per_second"]
    test_lengths = load_tokenizer(str(out / "project"))(list(splits["test"]["tokens"]), is_split_into_words=True)
    test_tokens = sum(map(len, test_lengths["input_ids"])) / len(test_lengths["input_ids"])
    bert_base = bench_bert_base(recipe, splits, labels, out, peak, bert_base_steps) if bert_base_steps else {}
    result = {
        "device": str(device),
        "precision": precision,
        "recipe": recipe_path or "recipes/quickstart.yaml",
        "train_samples_per_second_project": project["train_samples_per_second"],
        "train_samples_per_second_baseline": baseline["train_samples_per_second"],
        "train_tokens_per_second_project": tokens_per_second,
        "train_tokens_per_second_baseline": tokens_per_sample * baseline["train_samples_per_second"],
        "train_speedup": project["train_samples_per_second"] / baseline["train_samples_per_second"],
        "inference_sentences_per_second_project": inference["project_sentences_per_second"],
        "inference_sentences_per_second_pipeline": inference["pipeline_sentences_per_second"],
        "inference_speedup": inference["project_sentences_per_second"] / inference["pipeline_sentences_per_second"],
        "entities_identical": inference["entities_identical"],
        "sentences_with_different_entities": inference["sentences_with_different_entities"],
        "f1_project": sum(f1_runs["project"]) / f1_seeds,
        "f1_baseline": sum(f1_runs["baseline"]) / f1_seeds,
        "f1_project_runs": f1_runs["project"],
        "f1_baseline_runs": f1_runs["baseline"],
        "f1_seeds": f1_seeds,
        # Time to target: training seconds only (evaluation excluded on both sides).
        "target_f1": run_ner["validation_f1"],
        "f1_baseline_run_ner_defaults": run_ner["test_f1"],
        "time_to_target_s_baseline": run_ner["train_runtime_s"],
        # The project's side is the mean over the seeds (None when a seed never reached the target).
        "time_to_target_s_project": to_target_mean,
        "time_to_target_s_project_runs": to_target_seconds,
        "target_reached_step": to_target[0]["step"],
        "target_reached_steps": [run["step"] for run in to_target],
        "target_eval_steps": target_eval_steps,
        "time_to_target_speedup": run_ner["train_runtime_s"] / to_target_mean if to_target_mean else None,
        "target_timeline": to_target[0]["timeline"],
        **{key: inference[key] for key in ("int8_sentences_per_second", "int8_f1_change") if key in inference},
        **serving,
        **inference_options(inference),
        "matmul_peak_flops": peak,
        "mfu": mfu(config, tokens_per_second, peak),
        "mfu_baseline": mfu(config, tokens_per_sample * baseline["train_samples_per_second"], peak),
        "inference_mfu": mfu(config, test_tokens * inference["project_sentences_per_second"], peak, training=False),
        **bert_base,
    }
    (out / "bench.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    table = markdown_table(result)
    (out / "bench.md").write_text(table, encoding="utf-8")
    print(table)
    return result
