"""Loading the encoder, its tokenizer and a token-classification head with the right label maps."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForTokenClassification, AutoTokenizer

from .assets import is_package_path, resolve_path
from .errors import ModelError, ModelNotFoundError, RequestError

logger = logging.getLogger(__name__)

# Byte-level BPE tokenizers need this to accept pre-split words (`is_split_into_words=True`).
_PREFIX_SPACE_MODEL_TYPES = {"roberta", "xlm-roberta-bpe", "longformer", "bart", "gpt2", "deberta"}
_DEFAULT_LABEL = re.compile(r"^LABEL_\d+$")


def resolve_model_path(name_or_path: str, base_dir: str | Path = ".") -> str:
    """A `pkg://` path or an existing local dir becomes an absolute path; anything else is a Hub name.

    A string that looks like a local path (starts with `.`, `/` or `~`, or contains the OS separator and
    exists partly) but does not exist is an error here, rather than a confusing Hub lookup later.
    """
    if is_package_path(name_or_path):
        return str(resolve_path(name_or_path))
    local = Path(name_or_path).expanduser()
    if not local.is_absolute():
        local = Path(base_dir) / local
    if local.exists():
        if not (local / "config.json").is_file() and not is_adapter_dir(local):
            raise ModelNotFoundError(f"model path {name_or_path!r} exists but has no config.json ({local})")
        return str(local)
    if name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1 or os.sep + os.sep in name_or_path:
        raise ModelNotFoundError(f"model path {name_or_path!r} does not exist ({local})")
    return name_or_path  # a Hub id such as `bert-base-cased` or `org/model`


def is_adapter_dir(path: str | Path) -> bool:
    """A LoRA adapter directory (peft's `adapter_config.json`, no `config.json`) rather than a full model."""
    return (Path(path) / "adapter_config.json").is_file()


def load_model_config(model_path: str):
    """`config.json` of a model dir; for a LoRA adapter dir, the base model's config with the adapter's labels."""
    if is_adapter_dir(model_path):
        from .lora import adapter_config

        return adapter_config(model_path)
    return AutoConfig.from_pretrained(model_path)


def load_for_inference(model_path: str):
    """A token-classification model in eval mode from a full model dir or a LoRA adapter dir (onto a fresh base)."""
    if is_adapter_dir(model_path):
        from .lora import load_adapter_model

        return load_adapter_model(model_path)
    if getattr(AutoConfig.from_pretrained(model_path), "nertune_head", "linear") == "crf":
        # Its crf.* weights are not the token-classification model's: silence the "UNEXPECTED keys" report.
        from transformers.utils import logging as hf_logging

        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        try:
            model = AutoModelForTokenClassification.from_pretrained(model_path)
        finally:
            hf_logging.set_verbosity(verbosity)
    else:
        model = AutoModelForTokenClassification.from_pretrained(model_path)
    if getattr(model.config, "nertune_head", "linear") == "crf":
        attach_crf(model, getattr(model.config, "nertune_crf_scheme", "IOB2"), model_path, required=True)
    return model.eval()


def _crf_state(model_path: str) -> dict[str, torch.Tensor] | None:
    """The `crf.*` tensors saved with a model dir (inside model.safetensors, sharded or not), or None."""
    import json

    from safetensors import safe_open

    path = Path(model_path)
    files = [path / "model.safetensors"]
    index = path / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {})
        files = sorted({path / f for k, f in weight_map.items() if k.startswith("crf.")})
    state = {}
    for file in files:
        if file.is_file():
            with safe_open(str(file), framework="pt") as f:
                state.update({k[len("crf."):]: f.get_tensor(k) for k in f.keys() if k.startswith("crf.")})
    return state or None


def attach_crf(model, scheme: str, model_path: str | None = None, required: bool = False):
    """Give a token-classification model a CRF head (`model.crf`, saved with the model's weights as `crf.*`)
    over its labels, marked in config.json (`nertune_head: crf`, `nertune_crf_scheme`); the CRF's scores are
    loaded from `model_path` when it has them. Returns the CRF."""
    from .crf import LinearChainCRF

    id2label = model.config.id2label
    labels = [str(id2label[i]) for i in sorted(int(k) for k in id2label)]
    crf = LinearChainCRF(labels, scheme)
    state = _crf_state(model_path) if model_path is not None else None
    if state is not None:
        crf.load_state_dict(state)
    elif required:
        raise ModelError(f"{model_path}: config.json says nertune_head=crf but the weights have no crf.* tensors")
    model.crf = crf.to(next(model.parameters()).device)
    model.config.nertune_head = "crf"
    model.config.nertune_crf_scheme = crf.scheme
    return crf


def configure_head(model, head: str, scheme: str, model_path: str, keep_head: bool):
    """`head: crf` attaches a CRF (continuing a CRF model's scores when its head is kept); `linear` makes sure
    config.json does not claim a CRF. Returns the CRF or None."""
    if head == "crf":
        return attach_crf(model, scheme, model_path if keep_head and not is_adapter_dir(model_path) else None)
    model.config.nertune_head = "linear"
    return None


def load_tokenizer(model_path: str):
    config = load_model_config(model_path)
    kwargs = {"add_prefix_space": True} if config.model_type in _PREFIX_SPACE_MODEL_TYPES else {}
    tokenizer = AutoTokenizer.from_pretrained(model_path, **kwargs)
    if not getattr(tokenizer, "is_fast", True):
        raise ModelError(f"{model_path}: a fast tokenizer is required to map sub-tokens to words")
    return tokenizer


def trained_labels(config) -> list[str] | None:
    """The label list a fine-tuned checkpoint was trained with, or None for a plain encoder."""
    id2label = getattr(config, "id2label", None) or {}
    labels = [id2label[i] for i in sorted(int(k) for k in id2label)] if id2label else []
    labels = [str(x) for x in labels]
    if not labels or all(_DEFAULT_LABEL.match(x) for x in labels):
        return None
    return labels


def reconcile_labels(new_labels: list[str], model_path: str, label_mismatch: str = "error") -> tuple[list[str], bool]:
    """Decide the label list when continuing from `model_path`.

    Returns (labels, keep_head). A fine-tuned model whose labels cover the data keeps its head and its
    label order (so its predictions stay meaningful); labels it never saw are an error unless
    `label_mismatch="reset"`, which starts a fresh head.
    """
    old = trained_labels(AutoConfig.from_pretrained(model_path))
    if old is None:
        return new_labels, False
    unseen = [label for label in new_labels if label not in old]
    if not unseen:
        return old, True
    if label_mismatch == "reset":
        logger.warning("%s: labels %s are new to this model; starting a fresh classifier head", model_path, unseen)
        return new_labels, False
    raise ModelError(
        f"{model_path} was fine-tuned with labels {old}, but the data has labels it does not know: {unseen}. "
        "Set label_mismatch=reset to train a new classifier head from this encoder."
    )


def load_model_for_training(model_path: str, labels: list[str], keep_head: bool):
    label2id = {label: i for i, label in enumerate(labels)}
    id2label = dict(enumerate(labels))
    if keep_head:
        return AutoModelForTokenClassification.from_pretrained(model_path, id2label=id2label, label2id=label2id)
    return AutoModelForTokenClassification.from_pretrained(
        model_path, num_labels=len(labels), id2label=id2label, label2id=label2id, ignore_mismatched_sizes=True
    )


def cpu_supports_bf16() -> bool:
    """bf16 matmuls are fast on CPUs with AVX512-BF16 or AMX; elsewhere they are emulated and slow."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str) -> str:
    """`auto` picks bf16 where the hardware runs it natively, fp16 on older GPUs, else fp32."""
    if precision != "auto":
        if precision == "fp16" and not torch.cuda.is_available():
            raise RequestError("precision=fp16 needs a CUDA GPU; use bf16 or fp32 on CPU")
        return precision
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_supports_bf16() else "fp32"
