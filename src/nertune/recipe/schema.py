"""Recipes: a small YAML file that pins every hyperparameter, plus `key=value` overrides.

Like torchtune/litgpt recipes: the YAML and the command line set the same keys (dotted for nesting,
`data.train_file=...`), every value is checked against the dataclass field type, an unknown key is
an error that suggests the closest valid one, and the resolved recipe is saved next to the outputs.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nertune.errors import RecipeError
from nertune.recipe.hpo_space import check_hpo_section
from nertune.recipe.values import coerce_value

__all__ = [
    "RecipeError",
    "Recipe",
    "DataConfig",
    "LoraSection",
    "HpoSection",
    "load_recipe",
    "apply_overrides",
    "all_keys",
    "parse_overrides",
    "recipe_to_dict",
    "save_recipe",
]


@dataclass
class DataConfig:
    # Where the data comes from: a Hub dataset, or local files (CoNLL / JSON / JSONL).
    dataset_name: str | None = None
    dataset_config: str | None = None
    dataset_revision: str | None = None
    train_file: str | None = None
    validation_file: str | None = None
    test_file: str | None = None
    format: str = "auto"  # auto (from the extension) | conll | json
    token_column: int = 0
    tag_column: int = -1
    delimiter: str | None = None  # None: tab if the line has one, else runs of whitespace
    comment_prefix: str | None = None  # CoNLL lines starting with it are comments (GermEval, CoNLL-U: "#")
    encoding: str = "utf-8"  # of CoNLL files (latin-1 for the original German CoNLL-2003); JSON is always UTF-8
    label_names: list[str] | None = None  # names for integer tags in JSON files
    # JSON records with `text` + character spans (Doccano, spaCy, Prodigy): a span that cuts a word is an
    # error (strict) or takes the whole word (expand).
    span_alignment: str = "strict"
    # The scheme of the input tags (auto = detect on the training split) and the one we train with.
    tag_scheme: str = "auto"
    train_scheme: str = "IOB2"
    # Splits not given as files are carved out of the training data, deterministically.
    validation_ratio: float = 0.1
    test_ratio: float = 0.1
    split_seed: int = 42
    # A validation/test entity type never seen in training: "error", or "O" to map it to O (logged).
    unseen_label_policy: str = "error"
    # Rename entity TYPES of the data before use, e.g. {PERSON: PER, MISC: O} (O drops the type to O);
    # on the command line `data.label_map=PERSON:PER,MISC:O`. Used by `nertune evaluate` (cross-dataset tables).
    label_map: dict[str, str] | None = None
    # Rehearsal when continuing: replay_ratio x (train sentences) sampled (split_seed) from an earlier run's
    # training file, added to the training split only.
    replay_file: str | None = None
    replay_ratio: float = 0.5
    # Column names of a Hub (or local `datasets`) dataset; None: `tokens`, and the first of ner_tags/tags/labels.
    tokens_field: str | None = None
    tags_field: str | None = None


@dataclass
class LoraSection:
    """Low-rank adapters (peft) instead of full fine-tuning; the classifier head is always trained in full."""

    enabled: bool = False
    r: int = 8
    alpha: int = 16
    dropout: float = 0.1
    # None: the architecture's attention projections (BERT/RoBERTa: query, value;
    # DeBERTa-v2/v3: query_proj, value_proj).
    target_modules: list[str] | None = None
    merge: bool = False  # also write `merged/`: base + adapter folded into a plain model dir that pipeline() loads


@dataclass
class HpoSection:
    """`nertune hpo`: an optuna search over the keys below (unset = not searched), objective validation entity F1."""

    n_trials: int = 20  # trials run by this worker (each `nertune hpo` process sharing a storage runs its own)
    timeout_s: float | None = None  # stop starting new trials after this many seconds
    pruning: bool = False  # optuna MedianPruner on the validation F1 of every evaluation (eval_strategy)
    seed: int = 42  # the sampler's seed (with a shared storage each worker adds its process id)
    storage: str | None = None  # optuna RDB URL shared by several workers, e.g. sqlite:///hpo.db; None: in memory
    study_name: str | None = None  # default: nertune-<recipe stem>
    # The space (hpo_space.HPO_SPACE: how each is searched and checked): [low, high] ranges and lists of choices.
    learning_rate: list[float] | None = None  # [low, high], log scale
    num_train_epochs: list[int] | None = None  # [low, high], integers
    per_device_train_batch_size: list[int] | None = None  # choices
    warmup_ratio: list[float] | None = None  # [low, high]
    weight_decay: list[float] | None = None  # [low, high]
    lora_r: list[int] | None = None  # choices; needs lora.enabled
    lora_alpha: list[int] | None = None  # choices; needs lora.enabled


@dataclass
class Recipe:
    model_name_or_path: str = ""
    output_dir: str | None = None  # default: runs/<recipe file stem>
    data: DataConfig = field(default_factory=DataConfig)
    lora: LoraSection = field(default_factory=LoraSection)
    hpo: HpoSection = field(default_factory=HpoSection)  # used by `nertune hpo` only

    # Tokenisation and alignment.
    max_length: int = 128  # sub-tokens per window, special tokens included
    window_overlap: int = 32  # sub-tokens shared by consecutive windows of a long sentence
    label_all_subtokens: bool = False  # False: first sub-token carries the label, others -100
    # Document context (FLERT): up to this many sub-tokens of the neighbouring text of the same document
    # (-DOCSTART- or document_id) on each side of a sentence, read but never labelled. 0: off.
    context_size: int = 0

    # Classifier head: linear (softmax per word) | crf (linear-chain CRF over the words, constrained Viterbi).
    head: str = "linear"
    crf_learning_rate: float | None = None  # head=crf: learning rate of the CRF scores (None: learning_rate)

    # Optimisation.
    num_train_epochs: float = 3.0
    max_steps: int = -1
    learning_rate: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    lr_scheduler_type: str = "linear"
    optim: str = "adamw_torch_fused"  # any TrainingArguments optimizer; fused: one kernel per step
    per_device_train_batch_size: int = 16
    per_device_eval_batch_size: int = 64
    gradient_accumulation_steps: int = 1
    # Sentences (windows) per optimizer step over all processes. When set, gradient accumulation is derived
    # from the world size and per_device_train_batch_size becomes the largest micro-batch a device takes,
    # so a run gives the same result on 1, 2 or 8 GPUs.
    global_batch_size: int | None = None
    max_grad_norm: float = 1.0
    seed: int = 42
    precision: str = "auto"  # auto | fp32 | bf16 | fp16
    group_by_length: bool = True
    # Padded sub-tokens per optimizer step over all processes: similar-length sentences, many short ones per
    # step (replaces the sentence count of global_batch_size for training). None: off.
    max_tokens_per_batch: int | None = None

    # Evaluation, checkpoints, logging.
    eval_strategy: str = "epoch"  # epoch | steps | no
    eval_steps: int | None = None
    save_strategy: str = "epoch"
    save_steps: int | None = None
    save_total_limit: int | None = 2
    load_best_model_at_end: bool = True  # best = highest validation entity F1
    early_stopping_patience: int | None = None
    logging_steps: int = 50
    report_to: str = "auto"  # auto: tensorboard when installed | none | tensorboard | wandb ...
    resume_from_checkpoint: str | None = None  # a checkpoint dir, or "latest" for the newest in output_dir
    strict_metrics: bool = False  # seqeval strict mode (IOB2/BIOES)
    dataloader_num_workers: int = 0

    # Continuing from a fine-tuned model whose labels differ: "error", "reset" the classifier head, or "extend"
    # it (new labels appended, the old labels' weights kept).
    label_mismatch: str = "error"

    # Hugging Face Hub: push the finished run (model, tokenizer, model card, metrics; no checkpoints).
    push_to_hub: bool = False
    hub_model_id: str | None = None  # owner/name
    hub_private: bool = False


_CHOICES = {
    "data.format": ("auto", "conll", "json"),
    "data.tag_scheme": ("auto", "IOB1", "IOB2", "BIOES", "BILOU", "BMES", "BMEWO", "BMEOW"),
    "data.train_scheme": ("IOB2", "BIOES"),
    "data.unseen_label_policy": ("error", "O"),
    "data.span_alignment": ("strict", "expand"),
    "precision": ("auto", "fp32", "bf16", "fp16"),
    "eval_strategy": ("epoch", "steps", "no"),
    "save_strategy": ("epoch", "steps", "no", "best"),
    "label_mismatch": ("error", "reset", "extend"),
    "head": ("linear", "crf"),
}


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _unknown_key_error(key: str, valid: list[str], source: str) -> RecipeError:
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(sorted(valid))}"
    return RecipeError(f"{source}: unknown recipe key {key!r}{hint}")


def all_keys(cls: type = Recipe, prefix: str = "") -> list[str]:
    """Every settable dotted key of the recipe."""
    keys = []
    for name, annotation in _field_types(cls).items():
        if dataclasses.is_dataclass(annotation):
            keys.extend(all_keys(annotation, f"{prefix}{name}."))
        else:
            keys.append(f"{prefix}{name}")
    return keys


def _set_key(obj: Any, dotted: str, value: Any, source: str) -> None:
    parts = dotted.split(".")
    target = obj
    for i, part in enumerate(parts):
        hints = _field_types(type(target))
        if part not in hints:
            raise _unknown_key_error(dotted, all_keys(), source)
        annotation = hints[part]
        if i < len(parts) - 1:
            if not dataclasses.is_dataclass(annotation):
                raise _unknown_key_error(dotted, all_keys(), source)
            target = getattr(target, part)
            continue
        if dataclasses.is_dataclass(annotation):
            if not isinstance(value, dict):
                raise RecipeError(f"{source}: recipe key {dotted!r} is a section; expected a mapping, got {value!r}")
            for sub_key, sub_value in value.items():
                _set_key(obj, f"{dotted}.{sub_key}", sub_value, source)
            return
        coerced = coerce_value(value, annotation, dotted)
        choices = _CHOICES.get(dotted)
        if choices is not None and coerced not in choices:
            raise RecipeError(f"{source}: recipe key {dotted!r} must be one of {list(choices)}, got {coerced!r}")
        setattr(target, part, coerced)


def parse_overrides(overrides: list[str]) -> list[tuple[str, str]]:
    pairs = []
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise RecipeError(f"command-line override {item!r} is not of the form key=value")
        pairs.append((key.strip(), value))
    return pairs


def _set_overrides(recipe: Recipe, overrides: Sequence[str] | Mapping[str, Any] | None) -> None:
    if isinstance(overrides, Mapping):  # Python values from the API, e.g. {"data.train_file": path, "max_steps": 10}
        for key, value in overrides.items():
            _set_key(recipe, str(key), value, "overrides")
        return
    for key, value in parse_overrides(list(overrides or [])):
        _set_key(recipe, key, value, "command line")


def load_recipe(path: str | Path | None, overrides: Sequence[str] | Mapping[str, Any] | None = None) -> Recipe:
    """Read a recipe YAML (or start from defaults when `path` is None) and apply overrides: `key=value`
    strings (the command line) or a mapping of dotted keys to values."""
    recipe = Recipe()
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise RecipeError(f"recipe file not found: {path}")
        with open(path, encoding="utf-8") as f:
            try:
                content = yaml.safe_load(f) or {}
            except yaml.YAMLError as e:
                raise RecipeError(f"{path}: not valid YAML: {e}") from None
        if not isinstance(content, dict):
            raise RecipeError(f"{path}: a recipe is a mapping of keys to values, got {type(content).__name__}")
        for key, value in content.items():
            _set_key(recipe, str(key), value, str(path))
    _set_overrides(recipe, overrides)
    if recipe.output_dir is None:
        stem = Path(path).stem if path is not None else "run"
        recipe.output_dir = str(Path("runs") / stem)
    _check_recipe(recipe)
    return recipe


def apply_overrides(recipe: Recipe, overrides: Sequence[str] | Mapping[str, Any] | None) -> Recipe:
    """A checked copy of `recipe` with overrides applied, as `load_recipe` applies them to a file."""
    out = copy.deepcopy(recipe)
    _set_overrides(out, overrides)
    _check_recipe(out)
    return out


def _check_recipe(recipe: Recipe) -> None:
    if not recipe.model_name_or_path:
        raise RecipeError("recipe key 'model_name_or_path' is required (a local model dir, pkg://... or a Hub name)")
    if recipe.max_length < 8:
        raise RecipeError(f"recipe key 'max_length' must be at least 8, got {recipe.max_length}")
    if not 0 <= recipe.window_overlap < recipe.max_length // 2:
        raise RecipeError(
            f"recipe key 'window_overlap' must be in [0, max_length/2), got {recipe.window_overlap} "
            f"with max_length={recipe.max_length}"
        )
    try:
        from nertune.data import check_encoding

        check_encoding(recipe.data.encoding)
    except ValueError as e:
        raise RecipeError(f"recipe key 'data.encoding': {e}") from None
    if not 0 <= recipe.context_size < recipe.max_length:
        raise RecipeError(
            f"recipe key 'context_size' must be in [0, max_length), got {recipe.context_size} "
            f"with max_length={recipe.max_length} (it counts sub-tokens on each side of a sentence)"
        )
    _check_ranges(recipe)
    check_hpo_section(recipe)


def _check_ranges(recipe: Recipe) -> None:
    positive = {
        "per_device_train_batch_size": recipe.per_device_train_batch_size,
        "per_device_eval_batch_size": recipe.per_device_eval_batch_size,
        "gradient_accumulation_steps": recipe.gradient_accumulation_steps,
        "lora.r": recipe.lora.r,
    }
    if recipe.global_batch_size is not None:
        positive["global_batch_size"] = recipe.global_batch_size
    if recipe.max_tokens_per_batch is not None and recipe.max_tokens_per_batch < 2 * recipe.max_length:
        raise RecipeError(
            f"recipe key 'max_tokens_per_batch' must be at least 2 x max_length = "
            f"{2 * recipe.max_length}, got {recipe.max_tokens_per_batch}"
        )
    for key, value in positive.items():
        if value < 1:
            raise RecipeError(f"recipe key {key!r} must be at least 1, got {value}")
    if recipe.global_batch_size is not None and recipe.gradient_accumulation_steps != 1:
        raise RecipeError(
            "recipe keys 'global_batch_size' and 'gradient_accumulation_steps' exclude each other: "
            "with global_batch_size, accumulation is derived from the number of processes"
        )
    if recipe.head == "crf" and recipe.lora.enabled:
        raise RecipeError(
            "recipe key 'head': head=crf is not supported with lora.enabled=true (the adapter "
            "would not save the CRF); use full fine-tuning or head=linear"
        )
    if recipe.lora.alpha <= 0:
        raise RecipeError(f"recipe key 'lora.alpha' must be positive, got {recipe.lora.alpha}")
    if not 0 <= recipe.lora.dropout < 1:
        raise RecipeError(f"recipe key 'lora.dropout' must be in [0, 1), got {recipe.lora.dropout}")
    if recipe.lora.target_modules is not None and not recipe.lora.target_modules:
        raise RecipeError("recipe key 'lora.target_modules' is an empty list; leave it unset for the default")


def recipe_to_dict(recipe: Recipe) -> dict[str, Any]:
    return dataclasses.asdict(recipe)


def save_recipe(recipe: Recipe, path: str | Path) -> None:
    """Write the resolved recipe; `nertune train <that file>` reproduces the run."""
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(recipe_to_dict(recipe), f, sort_keys=False, allow_unicode=True)
