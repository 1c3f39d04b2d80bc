"""`make bench`, inference side: `NerPredictor` (PyTorch, int8, ONNX Runtime) against
`pipeline("token-classification", aggregation_strategy="first")` on the same words, with entity agreement and F1."""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

import torch

from nertune.evaluation.metrics import entity_metrics
from nertune.schemes import tags_to_spans

logger = logging.getLogger(__name__)


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


def bench_inference(
    model_dir: str, sentences: list[list[str]], gold: list[list[str]] | None = None, batch_sizes=(1, 8, 32)
) -> dict:
    """Sentences/s of the pipeline (best batch size) and of NerPredictor on the same texts and the same
    words, and whether both find exactly the same entities (type and character span)."""
    from transformers import pipeline

    from nertune.inference.predictor import NerPredictor

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
    result = {
        "pipeline_sentences_per_second": best,
        "project_sentences_per_second": ours_rate,
        "entities_identical": mismatches == 0,
        "sentences_with_different_entities": mismatches,
    }
    if device < 0:  # CPU serving options: their speed and their F1 on the corpus's own words
        options = {"int8": NerPredictor.from_pretrained(model_dir, batch_size=64, precision="int8")}
        with tempfile.TemporaryDirectory() as scratch:
            options.update(onnx_predictors(model_dir, Path(scratch)))
            for name, option in options.items():
                rate, tags = timed_tags(option, words)
                result[f"{name}_sentences_per_second"] = rate
                if name == "int8":
                    result["int8_tags_equal_fp32_fraction"] = sum(
                        [t for t, _ in a] == [t for t, _ in b] for a, b in zip(tags, tagged)
                    ) / len(texts)
                if gold is not None:
                    result[f"f1_{name}"] = entity_metrics(
                        gold, [[t for t, _ in s] for s in option.predict_words(sentences)]
                    )["f1"]
        if gold is not None:
            result["f1_pytorch"] = entity_metrics(
                gold, [[t for t, _ in s] for s in predictor.predict_words(sentences)]
            )["f1"]
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
    from nertune.inference.export import export_run
    from nertune.inference.predictor import NerPredictor

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
INFERENCE_OPTIONS = {
    "pytorch": ("project_sentences_per_second", "f1_pytorch"),
    "pytorch_int8": ("int8_sentences_per_second", "f1_int8"),
    "onnx": ("onnx_sentences_per_second", "f1_onnx"),
    "onnx_int8": ("onnx_int8_sentences_per_second", "f1_onnx_int8"),
}
F1_TOLERANCE = 0.005  # half an F1 point: an option losing more is not a serving option


def best_inference_option(inference: dict) -> tuple[str, float]:
    """The fastest option (sentences/s) whose test F1 is within `F1_TOLERANCE` of the PyTorch predictor's at
    its default precision (without test F1s, that predictor itself)."""
    reference = inference.get("f1_pytorch")
    candidates = {
        name: inference[rate]
        for name, (rate, f1) in INFERENCE_OPTIONS.items()
        if rate in inference
        and (
            name == "pytorch"
            or (reference is not None and f1 in inference and inference[f1] >= reference - F1_TOLERANCE)
        )
    }
    best = max(candidates, key=candidates.get)
    return best, candidates[best]


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
    result.update(
        {key: inference[key] for key in ("f1_pytorch", "f1_int8", "f1_onnx", "f1_onnx_int8") if key in inference}
    )
    best, rate = best_inference_option(inference)
    result["inference_best_option"] = best
    result["inference_best_speedup"] = rate / pipeline_rate
    return result
