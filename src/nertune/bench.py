"""`make bench`: the project's training and inference paths against the plain recipes users copy.

In one process and one run, on the same model, data, hyperparameters and seed:
(a) training samples/s and tokens/s: `run_training` vs a plain `Trainer` as in transformers'
    `run_ner.py` (truncation at max_length, first-sub-token labels, `DataCollatorForTokenClassification`,
    fp32, random sampler);
(b) inference sentences/s: `NerPredictor` vs `pipeline("token-classification", aggregation_strategy="first")`
    at its best batch size, with a check that both find identical entities;
(c) test entity F1 of both trained models, so speed is never bought with accuracy;
(d) model FLOPs utilisation of the project's training against a matmul peak measured in this run;
(e) time to target (`bench_train.py`): the baseline with run_ner.py's defaults sets a validation F1, the
    project's recipe is timed until it first reaches it.
Both trainings of (a) skip evaluation and checkpoints, so the timings compare the same work.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
import time
from pathlib import Path

import torch

from .bench_train import run_ner_recipe, time_to_target
from .config import Recipe, load_recipe
from .data import load_splits
from .metrics import entity_metrics
from .modeling import load_tokenizer, resolve_model_path, resolve_precision
from .schemes import build_label_list, tags_to_spans

logger = logging.getLogger(__name__)


def measure_matmul_peak(dtype: torch.dtype, device: torch.device, size: int = 2048, repeats: int = 10) -> float:
    """Achieved FLOP/s of a square matmul: the denominator of MFU, measured on this machine now."""
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    a @ b
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 2 * size**3 * repeats / (time.perf_counter() - started)


def train_baseline(recipe: Recipe, splits, labels: list[str], output_dir: Path,
                   score_splits: tuple[str, ...] = ("test",)) -> dict:
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
        model_path, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label2id)
    args = TrainingArguments(
        output_dir=str(output_dir), num_train_epochs=recipe.num_train_epochs, max_steps=recipe.max_steps,
        learning_rate=recipe.learning_rate, weight_decay=recipe.weight_decay, warmup_steps=recipe.warmup_ratio,
        per_device_train_batch_size=recipe.per_device_train_batch_size,
        per_device_eval_batch_size=recipe.per_device_eval_batch_size, seed=recipe.seed,
        eval_strategy="no", save_strategy="no", report_to="none", logging_steps=recipe.logging_steps,
        use_cpu=not torch.cuda.is_available(),
    )
    trainer = Trainer(model=model, args=args, train_dataset=train, processing_class=tokenizer,
                      data_collator=DataCollatorForTokenClassification(tokenizer))
    result = trainer.train()
    mean_tokens = sum(len(ids) for ids in train["input_ids"]) / len(train)
    metrics = {"train_samples_per_second": result.metrics["train_samples_per_second"],
               "train_tokens_per_second": mean_tokens * result.metrics["train_samples_per_second"],
               "train_runtime_s": result.metrics["train_runtime"]}
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
    from .train import run_training

    metrics = run_training(recipe)
    return {"train_samples_per_second": metrics["train_samples_per_second"],
            "train_runtime_s": metrics["train_runtime_s"], "test_f1": metrics["test_f1"]}


def pipeline_words(tokenizer, text: str) -> list[tuple[str, int, int]]:
    """The words `pipeline(aggregation_strategy="first")` groups sub-tokens into: the tokenizer's own
    pre-tokenizer (BERT: whitespace and punctuation, so `@user` is two words there)."""
    pre_tokenizer = getattr(getattr(tokenizer, "backend_tokenizer", None), "pre_tokenizer", None)
    if pre_tokenizer is None:
        words, position = [], 0
        for word in text.split(" "):
            words.append((word, position, position + len(word)))
            position += len(word) + 1
        return words
    return [(word, start, end) for word, (start, end) in pre_tokenizer.pre_tokenize_str(text)]


def bench_inference(model_dir: str, sentences: list[list[str]], gold: list[list[str]] | None = None,
                    batch_sizes=(1, 8, 32)) -> dict:
    """Sentences/s of the pipeline (best batch size) and of NerPredictor on the same texts and the same
    words, and whether both find exactly the same entities (type and character span)."""
    from transformers import pipeline

    from .predictor import NerPredictor

    texts = [" ".join(words) for words in sentences]
    device = 0 if torch.cuda.is_available() else -1
    ner = pipeline("token-classification", model=model_dir, aggregation_strategy="first", device=device)
    best, pipeline_entities = 0.0, None
    for batch_size in batch_sizes:
        started = time.perf_counter()
        outputs = ner(texts, batch_size=batch_size)
        rate = len(texts) / (time.perf_counter() - started)
        logger.info("pipeline batch_size=%d: %.1f sentences/s", batch_size, rate)
        if rate > best:
            best, pipeline_entities = rate, outputs
    predictor = NerPredictor.from_pretrained(model_dir, batch_size=64)
    predictor.predict_words([["warm", "up"]])
    started = time.perf_counter()
    words = [pipeline_words(predictor.tokenizer, text) for text in texts]
    tagged = predictor.predict_words([[w for w, _, _ in sentence] for sentence in words])
    ours_rate = len(texts) / (time.perf_counter() - started)

    mismatches = 0
    for sentence, tags, theirs in zip(words, tagged, pipeline_entities):
        spans = tags_to_spans([tag for tag, _ in tags], predictor.scheme)
        ours = {(t, sentence[i][1], sentence[j - 1][2]) for t, i, j in spans}
        if ours != {(e["entity_group"], e["start"], e["end"]) for e in theirs}:
            mismatches += 1
    result = {"pipeline_sentences_per_second": best, "project_sentences_per_second": ours_rate,
              "entities_identical": mismatches == 0, "sentences_with_different_entities": mismatches}
    if device < 0:  # CPU serving options: their speed and their F1 on the corpus's own words
        options = {"int8": NerPredictor.from_pretrained(model_dir, batch_size=64, precision="int8")}
        with tempfile.TemporaryDirectory() as scratch:
            options.update(onnx_predictors(model_dir, Path(scratch)))
            for name, option in options.items():
                rate, tags = timed_tags(option, words)
                result[f"{name}_sentences_per_second"] = rate
                if name == "int8":
                    result["int8_tags_equal_fp32_fraction"] = sum(
                        [t for t, _ in a] == [t for t, _ in b] for a, b in zip(tags, tagged)) / len(texts)
                if gold is not None:
                    result[f"f1_{name}"] = entity_metrics(gold, [[t for t, _ in s] for s in option.predict_words(sentences)])["f1"]
        if gold is not None:
            result["f1_pytorch"] = entity_metrics(gold, [[t for t, _ in s] for s in predictor.predict_words(sentences)])["f1"]
            result["int8_f1_change"] = result["f1_int8"] - result["f1_pytorch"]
    return result


def timed_tags(predictor, words: list[list[tuple[str, int, int]]]) -> tuple[float, list]:
    """Sentences/s of a warmed-up predictor on pre-split sentences, and its tags."""
    predictor.predict_words([["warm", "up"]])
    started = time.perf_counter()
    tagged = predictor.predict_words([[w for w, _, _ in sentence] for sentence in words])
    return len(words) / (time.perf_counter() - started), tagged


def onnx_predictors(model_dir: str, scratch: Path) -> dict:
    """ONNX Runtime predictors of the run (fp32 and dynamic int8 exports under `scratch`); none without the
    `onnx` extra."""
    from .export import export_run
    from .predictor import NerPredictor

    try:
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ModuleNotFoundError as e:
        logger.info("no ONNX numbers: %s is not installed (pip install 'nertune[onnx]')", e.name)
        return {}
    predictors = {}
    for name, quantize in (("onnx", None), ("onnx_int8", "int8")):
        # The bench scores every option on the whole test split: the export's own parity check can stay small.
        export_run(model_dir, scratch / name, quantize=quantize, max_parity_sentences=8)
        predictors[name] = NerPredictor.from_pretrained(scratch / name, batch_size=64)
    return predictors


# Options scored against the PyTorch predictor at its default precision: (result key of sentences/s, of test F1).
INFERENCE_OPTIONS = {"pytorch": ("project_sentences_per_second", "f1_pytorch"),
                     "pytorch_int8": ("int8_sentences_per_second", "f1_int8"),
                     "onnx": ("onnx_sentences_per_second", "f1_onnx"),
                     "onnx_int8": ("onnx_int8_sentences_per_second", "f1_onnx_int8")}
F1_TOLERANCE = 0.005  # half an F1 point: an option losing more is not a serving option


def best_inference_option(inference: dict) -> tuple[str, float]:
    """The fastest option (sentences/s) whose test F1 is within `F1_TOLERANCE` of the PyTorch predictor's at
    its default precision (without test F1s, that predictor itself)."""
    reference = inference.get("f1_pytorch")
    candidates = {name: inference[rate] for name, (rate, f1) in INFERENCE_OPTIONS.items()
                  if rate in inference and (name == "pytorch" or (
                      reference is not None and f1 in inference and inference[f1] >= reference - F1_TOLERANCE))}
    best = max(candidates, key=candidates.get)
    return best, candidates[best]


def run_bench(recipe_path: str | None, overrides: list[str] | None = None, target_eval_steps: int = 20) -> dict:
    """Run every comparison of the module docstring; write bench.json and bench.md, print the table.

    `target_eval_steps`: optimizer steps between the project's validation evaluations while timing it to
    the baseline's F1 (the time to target is exact up to that many steps)."""
    recipe = load_recipe(recipe_path or "recipes/quickstart.yaml",
                         ["output_dir=runs/bench", "eval_strategy=no", "save_strategy=no", "report_to=none",
                          "load_best_model_at_end=false", *(overrides or [])])
    out = Path(recipe.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    precision = resolve_precision(recipe.precision)
    peak_dtype = torch.bfloat16 if precision == "bf16" else torch.float16 if precision == "fp16" else torch.float32
    peak = measure_matmul_peak(peak_dtype, device)

    splits, _ = load_splits(recipe.data)
    labels = build_label_list(splits["train"]["ner_tags"], recipe.data.train_scheme)
    baseline = train_baseline(recipe, splits, labels, out / "baseline")
    project = train_project(dataclasses.replace(recipe, output_dir=str(out / "project")))
    run_ner = train_baseline(run_ner_recipe(recipe), splits, labels, out / "baseline-run-ner-defaults",
                             score_splits=("validation", "test"))
    to_target = time_to_target(dataclasses.replace(recipe, output_dir=str(out / "project-to-target")),
                               run_ner["validation_f1"], target_eval_steps)
    inference = bench_inference(str(out / "project"), list(splits["test"]["tokens"]), list(splits["test"]["ner_tags"]))
    # 32 clients, one sentence per request, against the same predictor's offline batches.
    from .serve_bench import bench_serving  # the `serve` extra

    serving = bench_serving(str(out / "project"), [" ".join(tokens) for tokens in splits["test"]["tokens"]])

    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(out / "project")
    # 6 FLOPs per parameter per token (forward + backward) over the encoder's dense layers.
    dense_params = 12 * config.num_hidden_layers * config.hidden_size**2
    lengths = [len(t) for t in load_tokenizer(str(out / "project"))(
        list(splits["train"]["tokens"]), is_split_into_words=True)["input_ids"]]
    # Samples/s times the mean sentence length: right for epochs and for max_steps runs alike.
    tokens_per_second = sum(lengths) / len(lengths) * project["train_samples_per_second"]
    result = {
        "device": str(device), "precision": precision, "recipe": recipe_path or "recipes/quickstart.yaml",
        "train_samples_per_second_project": project["train_samples_per_second"],
        "train_samples_per_second_baseline": baseline["train_samples_per_second"],
        "train_tokens_per_second_project": tokens_per_second,
        "train_tokens_per_second_baseline": baseline["train_tokens_per_second"],
        "train_speedup": project["train_samples_per_second"] / baseline["train_samples_per_second"],
        "inference_sentences_per_second_project": inference["project_sentences_per_second"],
        "inference_sentences_per_second_pipeline": inference["pipeline_sentences_per_second"],
        "inference_speedup": inference["project_sentences_per_second"] / inference["pipeline_sentences_per_second"],
        "entities_identical": inference["entities_identical"],
        "sentences_with_different_entities": inference["sentences_with_different_entities"],
        "f1_project": project["test_f1"], "f1_baseline": baseline["test_f1"],
        # Time to target: training seconds only (evaluation excluded on both sides).
        "target_f1": run_ner["validation_f1"],
        "f1_baseline_run_ner_defaults": run_ner["test_f1"],
        "time_to_target_s_baseline": run_ner["train_runtime_s"],
        "time_to_target_s_project": to_target["seconds"],
        "target_reached_step": to_target["step"],
        "target_eval_steps": target_eval_steps,
        "time_to_target_speedup": (run_ner["train_runtime_s"] / to_target["seconds"]
                                   if to_target["seconds"] else None),
        "target_timeline": to_target["timeline"],
        **{key: inference[key] for key in ("int8_sentences_per_second", "int8_f1_change") if key in inference},
        "serving_efficiency": serving["serving_efficiency"],
        "serving_sentences_per_second": serving["serving_sentences_per_second"],
        "serving_offline_sentences_per_second": serving["offline_sentences_per_second"],
        "serving_latency_p50_ms": serving["latency_p50_ms"],
        "serving_latency_p95_ms": serving["latency_p95_ms"],
        "serving_single_client_latency_ms": serving["single_client_latency_ms"],
        "serving_errors": serving["errors"],
        **inference_options(inference),
        "matmul_peak_flops": peak,
        "mfu": 6 * dense_params * tokens_per_second / peak,
    }
    (out / "bench.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    table = markdown_table(result)
    (out / "bench.md").write_text(table, encoding="utf-8")
    print(table)
    return result


def inference_options(inference: dict) -> dict:
    """Speedups over the pipeline of the CPU serving options, their F1, and the best one within half an F1 point."""
    pipeline_rate = inference["pipeline_sentences_per_second"]
    result = {}
    if "int8_sentences_per_second" in inference:
        result["inference_speedup_int8"] = inference["int8_sentences_per_second"] / pipeline_rate
    for name in ("onnx", "onnx_int8"):
        if f"{name}_sentences_per_second" in inference:
            result[f"inference_sentences_per_second_{name}"] = inference[f"{name}_sentences_per_second"]
            result[f"inference_speedup_{name}"] = inference[f"{name}_sentences_per_second"] / pipeline_rate
    result.update({key: inference[key] for key in ("f1_pytorch", "f1_int8", "f1_onnx", "f1_onnx_int8") if key in inference})
    best, rate = best_inference_option(inference)
    result["inference_best_option"] = best
    result["inference_best_speedup"] = rate / pipeline_rate
    return result


def markdown_table(r: dict) -> str:
    return "\n".join([
        f"| measure ({r['device']}, {r['precision']}) | project | baseline | ratio |",
        "|---|---|---|---|",
        f"| training samples/s | {r['train_samples_per_second_project']:.1f} | "
        f"{r['train_samples_per_second_baseline']:.1f} | {r['train_speedup']:.2f}x |",
        f"| inference sentences/s | {r['inference_sentences_per_second_project']:.1f} | "
        f"{r['inference_sentences_per_second_pipeline']:.1f} (pipeline) | {r['inference_speedup']:.2f}x |",
        f"| test entity F1 | {r['f1_project']:.4f} | {r['f1_baseline']:.4f} | "
        f"{r['f1_project'] - r['f1_baseline']:+.4f} |",
        _time_to_target_row(r),
        f"| identical entities (project vs pipeline, same words) | {r['entities_identical']} | | |",
        *([f"| int8 inference sentences/s (CPU option) | {r['int8_sentences_per_second']:.1f} | | "
           f"{r['int8_sentences_per_second'] / r['inference_sentences_per_second_pipeline']:.2f}x, "
           f"F1 {r['int8_f1_change']:+.4f} |"] if "int8_f1_change" in r else []),
        *([f"| serving, 32 single-sentence clients (sentences/s) | {r['serving_sentences_per_second']:.1f} | "
           f"{r['serving_offline_sentences_per_second']:.1f} (offline batches) | {r['serving_efficiency']:.2f}x, "
           f"p50 {r['serving_latency_p50_ms']:.0f} ms, {r['serving_errors']} errors |"] if "serving_efficiency" in r else []),
        *([f"| ONNX Runtime inference sentences/s (CPU option) | {r['inference_sentences_per_second_onnx']:.1f} | | "
           f"{r['inference_speedup_onnx']:.2f}x, F1 {r['f1_onnx'] - r['f1_pytorch']:+.4f} |",
           f"| ONNX Runtime int8 inference sentences/s (CPU option) | {r['inference_sentences_per_second_onnx_int8']:.1f} | | "
           f"{r['inference_speedup_onnx_int8']:.2f}x, F1 {r['f1_onnx_int8'] - r['f1_pytorch']:+.4f} |"]
          if "f1_onnx_int8" in r else []),
        f"| best inference option (F1 within 0.5 point) | {r['inference_best_option']} | | "
        f"{r['inference_best_speedup']:.2f}x |",
        f"| MFU (vs measured matmul peak {r['matmul_peak_flops'] / 1e9:.0f} GFLOP/s) | {r['mfu']:.1%} | | |",
        "",
    ])


def _time_to_target_row(r: dict) -> str:
    label = (f"| training s to validation F1 {r['target_f1']:.4f} (baseline: run_ner.py defaults, its final F1; "
             "evaluation excluded)")
    if r["time_to_target_s_project"] is None:
        return f"{label} | not reached | {r['time_to_target_s_baseline']:.1f} | - |"
    return (f"{label} | {r['time_to_target_s_project']:.1f} (step {r['target_reached_step']}) | "
            f"{r['time_to_target_s_baseline']:.1f} | {r['time_to_target_speedup']:.2f}x |")
