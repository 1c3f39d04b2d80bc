"""`nertune export RUN_DIR --format onnx --output DIR [--quantize int8]`: a run dir whose weights are `model.onnx`.

The exported dir is a run dir that `nertune predict` and `nertune serve` run with ONNX Runtime
(`backends.OnnxBackend`): `model.onnx` (the encoder and its token-classification layer: input ids, mask and
token types in, emission logits out, dynamic batch and sequence axes), `config.json` (labels, head), the
tokenizer, the run's recipe (scheme, window and context sizes) and, for a head with weights of its own (the
CRF's transition scores), `head_weights/model.safetensors`: the head decodes in Python, as it does for
PyTorch. A LoRA adapter dir is merged into its base model first.

The export is checked on sample text (the run's test split when its recipe finds it, else built-in
sentences): entities and the largest logit difference between PyTorch and ONNX Runtime, printed and written
to `DIR/export_report.json`.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from nertune.data import DataError, load_split
from nertune.data.align import encode_examples
from nertune.errors import MissingDependencyError, RequestError
from nertune.inference.backends import HEAD_WEIGHTS_DIR, ONNX_EXTRA_HINT, OnnxBackend, TorchBackend
from nertune.inference.predictor import NerPredictor
from nertune.model.packing import padded_batches
from nertune.model.references import RECIPE_FILE
from nertune.model.rundir import ONNX_FILE, RunDir
from nertune.model.settings import head_of
from nertune.recipe.schema import RecipeError
from nertune.schemes import tags_to_spans

logger = logging.getLogger(__name__)

FORMATS = ("onnx",)
QUANTIZATIONS = ("int8",)
REPORT_FILE = "export_report.json"

# Parity text when the run's recipe does not lead to its test split: varied casing, punctuation, lengths.
SAMPLE_SENTENCES = [
    "John Smith works at Google in London .".split(),
    "Mary visited Paris and Berlin with Bob last summer .".split(),
    "The European Union and NASA signed an agreement in Washington on Monday .".split(),
    "alice lives in rome .".split(),
    ["Angela", "Merkel", "met", "Emmanuel", "Macron", "in", "Brussels", ",", "said", "Reuters", "."],
    "Shares of Siemens AG rose 3 % in Frankfurt after the UNICEF report .".split(),
    ["Hello", "!"],
    "He said that the team from Madrid would travel to Oslo via Amsterdam next week .".split(),
]


def _check_onnx_extra() -> None:
    """The exporter needs onnx and onnxscript, the parity check onnxruntime: a clear error when one is missing."""
    for module in ("onnx", "onnxscript", "onnxruntime"):
        try:
            __import__(module)
        except ModuleNotFoundError:
            raise MissingDependencyError(f"nertune export needs {module}: {ONNX_EXTRA_HINT}") from None


def head_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The tensors of the head's own modules (`Head.own_modules`) in the model's state: the head's own weights."""
    names = tuple(f"{name}." for name in head_of(model.config).module_names)
    if not names:
        return {}
    return {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items() if k.startswith(names)}


def export_model_onnx(model: torch.nn.Module, tokenizer: Any, path: Path, max_length: int) -> None:
    """Write the model's emission logits graph to `path`, with dynamic batch and sequence axes."""
    features = encode_examples(SAMPLE_SENTENCES[:2], tokenizer, max_length, 0)
    # Two rows of different lengths: the exporter specialises axes of size 1 and keeps these symbolic.
    _, inputs = next(padded_batches(features, tokenizer.pad_token_id, 2, torch.device("cpu")))
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on axis names and deprecations
        torch.onnx.export(
            model,
            (),
            str(path),
            kwargs=inputs,
            input_names=list(inputs),
            output_names=["logits"],
            dynamic_shapes={name: {0: batch, 1: sequence} for name in inputs},
            dynamo=True,
            external_data=False,
            verbose=False,
        )


def quantize_int8(source: Path, target: Path) -> None:
    """ONNX Runtime's dynamic quantization: int8 weights, activations quantized per batch at run time."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)


def parity_sentences(run: RunDir, limit: int) -> tuple[list[list[str]], str]:
    """Up to `limit` sentences of the run's test split (from its recipe), else the built-in samples; and where from."""
    try:
        recipe = run.load_recipe()
    except RecipeError as e:
        logger.warning("parity check: %s; using built-in sentences", e)
        recipe = None
    if recipe is not None:
        try:
            test, _ = load_split(recipe.data, "test")
            sentences = [list(words) for words in test["tokens"] if words]
            if sentences:
                return sentences[:limit], f"test split ({len(sentences[:limit])} of {len(sentences)} sentences)"
        except (DataError, FileNotFoundError, ValueError) as e:  # data moved or offline: the samples still check
            logger.warning("parity check: cannot read the run's test split (%s); using built-in sentences", e)
    return [
        list(s) for s in SAMPLE_SENTENCES[:limit]
    ], f"built-in sample ({min(limit, len(SAMPLE_SENTENCES))} sentences)"


def _entity_sets(predictor: NerPredictor, tagged: list[list[tuple[str, float]]]) -> list[set]:
    return [set(tags_to_spans([tag for tag, _ in sentence], predictor.scheme)) for sentence in tagged]


def compare_backends(reference: NerPredictor, exported: NerPredictor, sentences: list[list[str]]) -> dict[str, Any]:
    """Entities and logits of two predictors of one model on the same sentences: the largest absolute logit
    difference over real (unpadded) sub-tokens, the sentences whose entities differ (with the first few)."""
    features = encode_examples(sentences, reference.tokenizer, reference.max_length, reference.window_overlap)
    max_difference = 0.0
    for _, batch in padded_batches(features, reference.tokenizer.pad_token_id, reference.batch_size, reference.device):
        difference = (reference.backend.logits(batch) - exported.backend.logits(batch)).abs()
        real = batch["attention_mask"].bool().cpu()
        if real.any():
            max_difference = max(max_difference, float(difference[real].max()))
    timings, tagged = {}, {}
    for name, predictor in (("pytorch", reference), ("onnx", exported)):
        started = time.perf_counter()
        tagged[name] = predictor.predict_words(sentences)
        timings[name] = len(sentences) / (time.perf_counter() - started)
    ours, theirs = _entity_sets(reference, tagged["pytorch"]), _entity_sets(exported, tagged["onnx"])
    changed = [i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b]
    examples = [
        {
            "sentence": " ".join(sentences[i]),
            "pytorch": sorted(map(list, ours[i])),
            "onnx": sorted(map(list, theirs[i])),
        }
        for i in changed[:5]
    ]
    return {
        "sentences": len(sentences),
        "max_abs_logit_difference": max_difference,
        "entities_identical": not changed,
        "sentences_with_different_entities": len(changed),
        "different_examples": examples,
        "pytorch_sentences_per_second": timings["pytorch"],
        "onnx_sentences_per_second": timings["onnx"],
    }


def export_run(
    run_dir: str | Path,
    output_dir: str | Path,
    export_format: str = "onnx",
    quantize: str | None = None,
    max_parity_sentences: int = 1000,
) -> dict[str, Any]:
    """Export a run dir (full model, CRF head, or LoRA adapter: merged) to `output_dir` (see the module doc),
    check it against PyTorch, write `export_report.json` and return the report."""
    if export_format not in FORMATS:
        raise RequestError(f"--format must be one of {FORMATS}, got {export_format!r}")
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise RequestError(f"--quantize must be one of {QUANTIZATIONS}, got {quantize!r}")
    if max_parity_sentences < 1:
        raise RequestError(f"the parity check needs at least 1 sentence, got {max_parity_sentences}")
    _check_onnx_extra()
    run = RunDir.load(run_dir)
    if run.is_onnx:
        raise RequestError(f"{run.path} is already an ONNX export ({ONNX_FILE}); export its PyTorch run dir")
    output = Path(output_dir)
    if output.resolve() == run.path.resolve():
        raise RequestError(f"--output {output} is the run dir itself; choose a new directory")
    if output.exists() and any(output.iterdir()):
        raise RequestError(f"--output {output} exists and is not empty; choose a new directory")
    output.mkdir(parents=True, exist_ok=True)

    reference = TorchBackend.from_run(run, device="cpu", precision="fp32")  # an adapter comes merged
    model, tokenizer = reference.model, run.load_tokenizer()
    if run.is_adapter:  # merged: the export is a full model
        run.settings.adapter = False
        run.settings.write_to(model.config)
    model.config.save_pretrained(output)  # labels and the `nertune` section: head, scheme, windows, context
    tokenizer.save_pretrained(output)
    if run.recipe_file is not None:  # the record of the run
        shutil.copy(run.recipe_file, output / RECIPE_FILE)
    own = head_tensors(model)
    if own:
        from safetensors.torch import save_file

        (output / HEAD_WEIGHTS_DIR).mkdir()
        save_file(own, str(output / HEAD_WEIGHTS_DIR / "model.safetensors"))

    started = time.perf_counter()
    if quantize is None:
        export_model_onnx(model, tokenizer, output / ONNX_FILE, run.max_length)
    else:
        with tempfile.TemporaryDirectory() as scratch:
            fp32_file = Path(scratch) / ONNX_FILE
            export_model_onnx(model, tokenizer, fp32_file, run.max_length)
            quantize_int8(fp32_file, output / ONNX_FILE)
    export_seconds = time.perf_counter() - started

    settings = dict(
        scheme=run.scheme,
        max_length=run.max_length,
        window_overlap=run.window_overlap,
        context_size=run.context_size,
        batch_size=32,
    )
    torch_predictor = NerPredictor(reference, tokenizer, name=run.path.name, **settings)
    exported_run = RunDir.load(output)
    onnx_predictor = NerPredictor(
        OnnxBackend.from_run(exported_run), exported_run.load_tokenizer(), name=output.name, **settings
    )
    sentences, source = parity_sentences(run, max_parity_sentences)
    report = {
        "run_dir": str(run.path),
        "output_dir": str(output),
        "format": export_format,
        "quantize": quantize,
        "head": run.head_name,
        "merged_lora_adapter": run.is_adapter,
        "export_seconds": export_seconds,
        "onnx_bytes": (output / ONNX_FILE).stat().st_size,
        "parity_text": source,
        **compare_backends(torch_predictor, onnx_predictor, sentences),
    }
    (output / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def format_report(report: dict[str, Any]) -> str:
    """The export's parity check in a few lines for the terminal."""
    kind = "ONNX int8" if report["quantize"] == "int8" else "ONNX"
    lines = [
        f"exported {report['run_dir']} -> {report['output_dir']}/{ONNX_FILE} ({kind}, head {report['head']})",
        f"parity on {report['parity_text']}: max |logit difference| {report['max_abs_logit_difference']:.3g}, "
        f"sentences with different entities: {report['sentences_with_different_entities']} "
        f"of {report['sentences']}",
        f"sentences/s: PyTorch {report['pytorch_sentences_per_second']:.1f}, "
        f"ONNX Runtime {report['onnx_sentences_per_second']:.1f}",
    ]
    for example in report["different_examples"]:
        lines.append(f"  differs: {example['sentence']!r}: PyTorch {example['pytorch']} vs ONNX {example['onnx']}")
    lines.append(f"report: {Path(report['output_dir']) / REPORT_FILE}")
    return "\n".join(lines)
