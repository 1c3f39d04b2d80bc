"""Loading the encoder, its tokenizer and a token-classification model with the right label maps and head.

`resolve_model_path` and `is_adapter_dir` live in `paths.py` (shared with `lora.py`) and are re-exported here.
"""

from __future__ import annotations

import logging
import re

import torch
from transformers import AutoConfig, AutoTokenizer

from nertune.errors import ModelError, RequestError
from nertune.heads import Head, get_head
from nertune.model.lora import adapter_config, load_adapter_model
from nertune.model.references import is_adapter_dir, resolve_model_path
from nertune.model.settings import ModelSettings, head_of

__all__ = [
    "cpu_supports_bf16",
    "is_adapter_dir",
    "load_for_inference",
    "load_model_config",
    "load_model_for_training",
    "load_tokenizer",
    "model_class",
    "reconcile_labels",
    "resolve_model_path",
    "resolve_precision",
    "trained_labels",
]

logger = logging.getLogger(__name__)

# Byte-level BPE tokenizers need this to accept pre-split words (`is_split_into_words=True`).
_PREFIX_SPACE_MODEL_TYPES = {"roberta", "xlm-roberta-bpe", "longformer", "bart", "gpt2", "deberta"}
_DEFAULT_LABEL = re.compile(r"^LABEL_\d+$")


def load_model_config(model_path: str):
    """`config.json` of a model dir; for a LoRA adapter dir, the base model's config with the adapter's labels."""
    if is_adapter_dir(model_path):
        return adapter_config(model_path)
    return AutoConfig.from_pretrained(model_path)


def model_class(config, head: Head | None = None) -> type:
    """The class of a token-classification model of `config` with `head` (default: the one config.json names):
    the architecture's HF class, or the head's subclass of it (`Head.model_class`)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING

    try:
        base = MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING[type(config)]
    except KeyError:
        raise ModelError(
            f"model type {config.model_type!r} has no token-classification model in transformers"
        ) from None
    return (head or head_of(config)).model_class(base)


def load_for_inference(model_path: str, config=None):
    """A token-classification model with its head, in eval mode, from a full model dir or a LoRA adapter dir
    (onto a fresh base); `config`: the dir's `load_model_config` when already read (not read again)."""
    config = config if config is not None else load_model_config(model_path)
    if is_adapter_dir(model_path):
        return load_adapter_model(model_path, config=config)
    head = head_of(config)
    model, info = model_class(config, head).from_pretrained(model_path, config=config, output_loading_info=True)
    missing = sorted(k for k in info["missing_keys"] if k.split(".", 1)[0] in head.module_names)
    if missing:
        raise ModelError(f"{model_path}: config.json says head={head.name} but the weights lack {missing}")
    return model.eval()


def load_tokenizer(model_path: str, config=None):
    """The fast tokenizer of a model dir; `config`: its `load_model_config` when already read."""
    config = config if config is not None else load_model_config(model_path)
    kwargs = {"add_prefix_space": True} if config.model_type in _PREFIX_SPACE_MODEL_TYPES else {}
    tokenizer = AutoTokenizer.from_pretrained(model_path, config=config, **kwargs)
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
    """Decide the label list when continuing from `model_path` (a model dir, a LoRA adapter dir or a Hub name).

    Returns (labels, keep_head). A fine-tuned model whose labels cover the data keeps its head and its
    label order (so its predictions stay meaningful); labels it never saw are an error unless
    `label_mismatch="reset"` (a fresh head) or `"extend"`: the model's labels in their order, the new ones
    appended, the head kept (`Head.extend_labels` grows it).
    """
    old = trained_labels(load_model_config(model_path))
    if old is None:
        return new_labels, False
    unseen = [label for label in new_labels if label not in old]
    if not unseen:
        return old, True
    if label_mismatch == "extend":
        logger.info(
            "%s: extending its %d labels with %s; the old labels keep their ids and weights",
            model_path,
            len(old),
            unseen,
        )
        return old + unseen, True
    if label_mismatch == "reset":
        logger.warning("%s: labels %s are new to this model; starting a fresh classifier head", model_path, unseen)
        return new_labels, False
    raise ModelError(
        f"{model_path} was fine-tuned with labels {old}, but the data has labels it does not know: {unseen}. "
        "Set label_mismatch=extend to add them to its head (the old labels' weights kept), or "
        "label_mismatch=reset to train a new classifier head from this encoder."
    )


def load_model_for_training(model_path: str, labels: list[str], keep_head: bool, settings: ModelSettings | None = None):
    """A token-classification model to train, of the head and settings `settings` names (written into its
    config.json's `nertune` section): with `keep_head`, the checkpoint's own head and labels (a prefix of
    `labels` under label_mismatch=extend, grown by the head afterwards), its head's own weights too when it
    has them; else a fresh head for `labels`. A LoRA adapter dir is merged into its base first
    (`lora.enabled=false`: train in full). Default settings: the linear head's."""
    settings = settings if settings is not None else ModelSettings()
    head = get_head(settings.head).from_settings(settings.scheme, settings.head_settings)
    if is_adapter_dir(model_path):
        if not keep_head:
            raise ModelError(f"{model_path} is a LoRA adapter: continue it with label_mismatch=error or extend")
        merged = load_adapter_model(model_path).merge_and_unload()
        merged.requires_grad_(True)  # peft froze the base weights; merged, all of them train
        settings.write_to(merged.config)
        return merged.train()
    if keep_head:
        config = AutoConfig.from_pretrained(model_path)
        settings.write_to(config)
        return model_class(config, head).from_pretrained(model_path, config=config)
    config = AutoConfig.from_pretrained(
        model_path,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={x: i for i, x in enumerate(labels)},
    )
    settings.write_to(config)
    model = model_class(config, head).from_pretrained(model_path, config=config, ignore_mismatched_sizes=True)
    for name, module in head.own_modules(config).items():  # a fresh head: not a checkpoint's own weights either
        setattr(model, name, module)
    return model


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
