"""LoRA with peft: wrap the encoder, save an adapter that reloads on its own, merge it into a plain model.

An adapter directory holds `adapter_config.json` + `adapter_model.safetensors` (the low-rank matrices and,
because peft puts the classifier into `modules_to_save` for TOKEN_CLS, the whole classifier head), the
tokenizer, and `nertune_adapter.json`: the label maps, the base model reference and the `nertune` section of
settings (`model.settings`) that a full model keeps in config.json, which peft does not keep (an adapter dir
has no `config.json`), so nobody needs to know `num_labels` to reload it.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForTokenClassification, AutoTokenizer, PretrainedConfig

from nertune.errors import ModelNotFoundError
from nertune.model.references import RECIPE_FILE, recipe_path, resolve_model_path
from nertune.model.settings import SECTION
from nertune.recipe.schema import LoraSection, RecipeError

logger = logging.getLogger(__name__)

ADAPTER_INFO = "nertune_adapter.json"
_ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
_HEAD_NAMES = ("classifier", "score")  # what peft trains in full for TOKEN_CLS


def linear_layer_names(model: torch.nn.Module) -> list[str]:
    """Distinct last-name parts of the encoder's linear layers: the valid `lora.target_modules` values."""
    return sorted(
        {
            name.rsplit(".", 1)[-1]
            for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and name.rsplit(".", 1)[-1] not in _HEAD_NAMES
        }
    )


def resolve_target_modules(model: torch.nn.Module, requested: list[str] | None) -> list[str]:
    """The recipe's target modules, or the architecture's default (peft's table); unknown names are an error."""
    from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING

    available = linear_layer_names(model)
    model_type = model.config.model_type
    if requested is None:
        requested = TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING.get(model_type)
        if not isinstance(requested, list):
            raise RecipeError(
                f"lora.target_modules: no default for model type {model_type!r}; set it to some of "
                f"the model's linear layers: {available}"
            )
    unknown = [name for name in requested if name not in available]
    if unknown:
        raise RecipeError(
            f"lora.target_modules: {unknown} not in this {model_type} model; its linear layers are: {available}"
        )
    return list(requested)


def apply_lora(model, section: LoraSection):
    """Freeze the encoder and add LoRA matrices to `section.target_modules`; the head stays fully trainable."""
    from peft import LoraConfig, TaskType, get_peft_model

    targets = resolve_target_modules(model, section.target_modules)
    logger.info(
        "LoRA r=%d alpha=%d dropout=%s on %s; classifier head trained in full",
        section.r,
        section.alpha,
        section.dropout,
        targets,
    )
    config = LoraConfig(
        task_type=TaskType.TOKEN_CLS,
        r=section.r,
        lora_alpha=section.alpha,
        lora_dropout=section.dropout,
        target_modules=targets,
    )
    return get_peft_model(model, config)


def trainable_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameter counts; peft's count for an adapter model (its head copy counted once)."""
    if hasattr(model, "get_nb_trainable_parameters"):
        return model.get_nb_trainable_parameters()
    return (sum(p.numel() for p in model.parameters() if p.requires_grad), sum(p.numel() for p in model.parameters()))


def adapter_size_bytes(adapter_dir: str | Path) -> int:
    return sum(
        (Path(adapter_dir) / name).stat().st_size for name in _ADAPTER_WEIGHTS if (Path(adapter_dir) / name).is_file()
    )


def save_adapter_info(
    adapter_dir: str | Path, base_model: str, id2label: dict[int, str], settings: dict | None = None
) -> None:
    """Write what peft leaves out: the labels, the base model as the recipe named it (portable `pkg://`) and
    the `nertune` settings section."""
    info = {
        "base_model": base_model,
        "id2label": {str(i): label for i, label in id2label.items()},
        "label2id": {label: int(i) for i, label in id2label.items()},
    }
    if settings is not None:
        info[SECTION] = settings
    (Path(adapter_dir) / ADAPTER_INFO).write_text(
        json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )


def _read_info(adapter_dir: Path) -> dict:
    path = adapter_dir / ADAPTER_INFO
    if not path.is_file():
        raise ModelNotFoundError(
            f"{adapter_dir}: adapter without {ADAPTER_INFO} (label names); "
            "was it written by `nertune train` with lora.enabled?"
        )
    return json.loads(path.read_text(encoding="utf-8"))


def adapter_base_reference(adapter_dir: str | Path) -> str:
    """The base model as the adapter's training recipe named it (e.g. `pkg://...`), for a continued run's info."""
    from peft import PeftConfig

    return (
        _read_info(Path(adapter_dir)).get("base_model")
        or PeftConfig.from_pretrained(adapter_dir).base_model_name_or_path
    )


def base_model_path(adapter_dir: str | Path, info: dict | None = None) -> str:
    """The base model: the recipe's reference when it resolves here, else the path peft recorded (`info`: the
    adapter's nertune_adapter.json when already read)."""
    from peft import PeftConfig

    adapter_dir = Path(adapter_dir)
    recorded = (info if info is not None else _read_info(adapter_dir)).get("base_model")
    tried = []
    for candidate in (recorded, None):  # None: peft's record, read only when the recipe's reference fails
        candidate = candidate or PeftConfig.from_pretrained(adapter_dir).base_model_name_or_path
        tried.append(candidate)
        try:
            return resolve_model_path(candidate)
        except FileNotFoundError:
            continue
    raise ModelNotFoundError(f"{adapter_dir}: base model not found (tried {tried})")


def adapter_config(adapter_dir: str | Path) -> PretrainedConfig:
    """The base model's config with the adapter's label maps and settings section: what `config.json` would be
    for a full model."""
    info = _read_info(Path(adapter_dir))
    id2label = {int(i): label for i, label in info["id2label"].items()}
    base = base_model_path(adapter_dir, info)
    config = AutoConfig.from_pretrained(base, id2label=id2label, label2id=info["label2id"])
    if SECTION in info:
        setattr(config, SECTION, info[SECTION])
    return config


def load_adapter_model(adapter_dir: str | Path, trainable: bool = False, config: PretrainedConfig | None = None):
    """A fresh base model with the adapter (and its trained head) on top: in eval mode, or with `trainable`
    the adapter's matrices and head trainable (continuing a LoRA run), the base frozen. `config`: the
    adapter's `adapter_config` when already read."""
    from peft import PeftModel
    from transformers.utils import logging as hf_logging

    config = config if config is not None else adapter_config(adapter_dir)
    # The base checkpoint has no head for these labels; the adapter brings it. Silence the "newly initialized
    # weights" warning, which is about the placeholder head that the adapter replaces.
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        # `config.name_or_path`: the base model dir `adapter_config` loaded it from.
        base = AutoModelForTokenClassification.from_pretrained(
            config.name_or_path, config=config, ignore_mismatched_sizes=True
        )
    finally:
        hf_logging.set_verbosity(verbosity)
    if trainable:
        return PeftModel.from_pretrained(base, str(adapter_dir), is_trainable=True)
    return PeftModel.from_pretrained(base, str(adapter_dir)).eval()


def merge_adapter(adapter_dir: str | Path, output_dir: str | Path) -> Path:
    """Fold the adapter into the base weights: a plain model dir (config.json with labels, tokenizer, recipe)."""
    adapter_dir, output_dir = Path(adapter_dir), Path(output_dir)
    merged = load_adapter_model(adapter_dir).merge_and_unload()
    section = getattr(merged.config, SECTION, None)
    if section is not None:  # a full model now, of the same settings
        setattr(merged.config, SECTION, {**section, "adapter": False})
    merged.save_pretrained(output_dir)
    # The adapter dir's tokenizer was saved from the training tokenizer: its settings come along.
    AutoTokenizer.from_pretrained(str(adapter_dir)).save_pretrained(output_dir)
    recipe = recipe_path(adapter_dir)
    if recipe is not None:  # max_length, windows, scheme for `nertune evaluate/predict`
        shutil.copy(recipe, output_dir / RECIPE_FILE)
    return output_dir
