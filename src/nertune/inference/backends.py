"""The forward pass of a loaded run: a PyTorch module (`TorchBackend`) or an ONNX Runtime session (`OnnxBackend`).

`NerPredictor` asks its backend for the `batches` of its windows (`forward_batches`: packed several to a row
where the model computes the same as padded, else padded) and for their `logits(batch)`; everything else
(windows, merging, the head's decoding) is the same for both. A backend also gives the predictor the
model's `config` and `head_model`: the module the head decodes with (the torch model itself, or for ONNX a
small module holding only the head's own weights, e.g. the CRF's transition scores, which stay in Python).

An exported ONNX dir (`nertune export`, see `export.py`) is a run dir whose weights are `model.onnx`;
its head's own weights, when the head has any, are in `head_weights/model.safetensors`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from nertune.errors import MissingDependencyError, ModelError, RequestError
from nertune.model.loading import cpu_supports_bf16, resolve_precision
from nertune.model.packing import (
    MODEL_INPUTS,
    Placement,
    cheapest_row_tokens,
    packed_batches,
    padded_batches,
    padding_share,
)
from nertune.model.rundir import ONNX_FILE, RunDir
from nertune.model.settings import head_of

logger = logging.getLogger(__name__)

# Padded batches are cheaper up to this much padding: packed rows attend over longer rows (make bench).
PACK_ABOVE_PADDING = 0.1

HEAD_WEIGHTS_DIR = "head_weights"  # holds a model.safetensors with the head's own tensors only
ONNX_EXTRA_HINT = "pip install 'nertune[onnx]'"

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def import_onnxruntime():
    """onnxruntime, or a clear error naming the extra that installs it."""
    try:
        import onnxruntime
    except ModuleNotFoundError:
        raise MissingDependencyError(f"ONNX Runtime is not installed: {ONNX_EXTRA_HINT}") from None
    return onnxruntime


class Backend:
    """A model's forward pass: `logits(batch)` -> float32 (B, T, L) logits on `device`."""

    config: Any  # the HF config (labels, head)
    head_model: torch.nn.Module  # what the head decodes with (`Head.bind(head_model)`)
    device: torch.device

    def logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def batches(
        self, features: dict[str, list], pad_token_id: int | None, batch_size: int, row_tokens: int
    ) -> Iterator[tuple[list[Placement], dict[str, torch.Tensor]]]:
        """The model inputs of every forward pass over `features`' windows (`forward_batches`)."""
        return padded_batches(features, pad_token_id, batch_size, self.device)


class TorchBackend(Backend):
    """A PyTorch token-classification model (with its head's modules), in eval mode."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model.eval()
        self.head_model = self.model
        self.config = model.config
        self.device = next(model.parameters()).device
        self.packs: bool | None = None  # whether windows are packed several to a row; decided on first use

    @classmethod
    def from_run(cls, run: RunDir, device: str | None = None, precision: str = "auto") -> TorchBackend:
        """The run's model on `device` (default: cuda when available) in `precision`; a LoRA adapter is
        merged (inference then costs what a plain model does); `int8` quantizes the Linear layers dynamically."""
        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        precision = _torch_precision(precision, device)
        model = run.load_model()
        if run.is_adapter:
            model = model.merge_and_unload()
        if precision == "int8":
            # Linear weights quantized once, activations per batch; `make bench` reports its speed and F1 change.
            model = torch.ao.quantization.quantize_dynamic(model.float(), {torch.nn.Linear}, dtype=torch.qint8)
        else:
            model = model.to(device=device, dtype=_DTYPES[precision])
        return cls(model)

    @torch.inference_mode()
    def logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.model(**batch).logits.float()

    def batches(
        self, features: dict[str, list], pad_token_id: int | None, batch_size: int, row_tokens: int
    ) -> Iterator[tuple[list[Placement], dict[str, torch.Tensor]]]:
        """Packed rows of up to `row_tokens` sub-tokens (as many as cost least: `cheapest_row_tokens`) when padded
        batches would add more than `PACK_ABOVE_PADDING` padding and the model computes the same for packed rows
        (checked once), else padded batches."""
        lengths = [len(window) for window in features["input_ids"]]
        if padding_share(lengths, batch_size) > PACK_ABOVE_PADDING and self._packing_works(
            features, pad_token_id, row_tokens
        ):
            row_tokens = cheapest_row_tokens(lengths, row_tokens, batch_size)
            return packed_batches(features, pad_token_id, batch_size, row_tokens, self.device, self._dtype())
        return padded_batches(features, pad_token_id, batch_size, self.device)

    def _packing_works(self, features: dict[str, list], pad_token_id: int | None, row_tokens: int) -> bool:
        if self.packs is None:
            self.packs = self._packing_matches_padding(features, pad_token_id, row_tokens)
        return self.packs

    def _dtype(self) -> torch.dtype:
        """The dtype of the model's activations (int8 models keep float32 ones)."""
        return next(self.model.parameters()).dtype

    def _packing_matches_padding(self, features: dict[str, list], pad_token_id: int | None, row_tokens: int) -> bool:
        """Whether two copies of a window packed into one row get the logits the window gets alone."""
        length = min(len(features["input_ids"][0]), row_tokens // 2)
        if length < 2:
            return False  # rows too short to hold two windows: nothing to gain
        probe = {key: [features[key][0][:length]] * 2 for key in MODEL_INPUTS if key in features}
        _, alone = next(padded_batches(probe, pad_token_id, 1, self.device))
        placements, packed = next(packed_batches(probe, pad_token_id, 1, row_tokens, self.device, self._dtype()))
        try:
            reference = self.logits(alone)[0]
            together = self.logits(packed)
        except (TypeError, ValueError, RuntimeError) as e:  # e.g. a model that takes no position_ids
            logger.info("%s: windows are padded, not packed (%s)", type(self.model).__name__, e)
            return False
        quantized = any("quantized" in type(module).__module__ for module in self.model.modules())
        tolerance = 1e-4 if self._dtype() == torch.float32 and not quantized else 2e-2
        scale = 1 + reference.abs().max().item()
        matches = all(
            (together[row, offset : offset + length] - reference).abs().max().item() <= tolerance * scale
            for _, row, offset in placements
        )
        logger.info(
            "%s: %s",
            type(self.model).__name__,
            f"short windows are packed into rows of {row_tokens} sub-tokens"
            if matches
            else "packed rows change its logits (positions or masks of its own): windows are padded",
        )
        return matches


def _torch_precision(precision: str, device: torch.device) -> str:
    if precision == "int8" and device.type != "cpu":
        raise RequestError("precision=int8 (dynamic quantization) runs on the CPU only; use bf16 or fp16 on a GPU")
    if device.type == "cpu":
        if precision == "int8":
            return precision
        if precision == "fp16":
            raise RequestError("precision=fp16 needs a CUDA device; use bf16 or fp32 on CPU")
        if precision == "auto":  # resolve_precision would look at the GPU even when asked for the CPU
            return "bf16" if cpu_supports_bf16() else "fp32"
    return resolve_precision(precision)


class HeadWeights(torch.nn.Module):
    """The head's side of an exported model: its config and the head's own modules (`Head.own_modules`, under
    the names the full model gives them, so `head_weights/model.safetensors` holds the model's own tensors of
    them), without the encoder, which runs in ONNX Runtime."""

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.config = config
        for name, module in head_of(config).own_modules(config).items():
            self.add_module(name, module)

    @classmethod
    def load(cls, config: Any, weights_dir: Path) -> HeadWeights:
        """The head's own modules of `config` with the tensors saved in `weights_dir/model.safetensors`."""
        from safetensors.torch import load_file

        head_model = cls(config)
        if any(True for _ in head_model.parameters()):
            file = weights_dir / "model.safetensors"
            if not file.is_file():
                raise ModelError(
                    f"{weights_dir.parent}: the {head_of(config).name} head's weights are missing ({file})"
                )
            head_model.load_state_dict(load_file(str(file)))
        return head_model.eval()


def session_options(threads: int | None = None):
    """ONNX Runtime options for CPU inference: basic graph optimizations (constant folding, redundant nodes;
    the extended fusions measured slower on small CPUs), sequential execution (a BERT graph has no parallel
    branches), and as many intra-op threads as torch uses (`torch.get_num_threads()`, i.e. OMP_NUM_THREADS),
    so both backends answer to the same setting."""
    ort = import_onnxruntime()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    return options


class OnnxBackend(Backend):
    """An exported model (`model.onnx`) in an ONNX Runtime session on the CPU; the head decodes in Python."""

    device = torch.device("cpu")

    def __init__(
        self, onnx_file: str | Path, config: Any, head_model: torch.nn.Module, threads: int | None = None
    ) -> None:
        ort = import_onnxruntime()
        self.onnx_file = Path(onnx_file)
        self.session = ort.InferenceSession(
            str(self.onnx_file), sess_options=session_options(threads), providers=["CPUExecutionProvider"]
        )
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.config = config
        self.head_model = head_model

    @classmethod
    def from_run(
        cls, run: RunDir, device: str | None = None, precision: str = "auto", threads: int | None = None
    ) -> OnnxBackend:
        """The exported run's ONNX model; its precision is the one it was exported with (`--quantize`)."""
        if device is not None and torch.device(device).type != "cpu":
            raise RequestError(f"{run.path} is an ONNX export, run by ONNX Runtime on the CPU; got device={device}")
        if precision not in ("auto", "fp32"):
            raise RequestError(
                f"{run.path} is an ONNX export: its precision was fixed at export time "
                f"(`nertune export --quantize int8`); got precision={precision}"
            )
        head_model = HeadWeights.load(run.config, run.path / HEAD_WEIGHTS_DIR)
        return cls(run.path / ONNX_FILE, run.config, head_model, threads=threads)

    def logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        missing = [name for name in self.input_names if name not in batch]
        if missing:
            raise RequestError(f"{self.onnx_file} needs inputs {missing} that the tokenizer did not produce")
        inputs = {name: batch[name].cpu().numpy() for name in self.input_names}
        (logits,) = self.session.run(["logits"], inputs)
        return torch.from_numpy(logits).float()


def load_backend(run: RunDir, device: str | None = None, precision: str = "auto") -> Backend:
    """The backend a run dir needs: ONNX Runtime for an exported dir (`model.onnx`), else PyTorch."""
    if run.is_onnx:
        return OnnxBackend.from_run(run, device=device, precision=precision)
    return TorchBackend.from_run(run, device=device, precision=precision)
