"""The recipe's sections as pydantic models: `data`, `lora`, and the settings of `hpo` (its search ranges are
derived from the searchable fields, see `hpo_space.py`).

Every field carries its description (the key reference of `reference.py` prints it), its choices as a `Literal`
and its bounds as `Field(ge=..., gt=...)`; `json_schema_extra={"hpo": ...}` marks a key `nertune hpo` can search.
"""

from __future__ import annotations

import os
import types
import typing
from typing import Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from nertune.recipe.hpo_space import Dimension, check_ranges

NULL_WORDS = ("null", "none", "~")


def _allows(annotation: Any, kind: type) -> bool:
    """Whether a field's annotation is `kind` or a union with it (`list[int] | None` allows list and None)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_allows(arg, kind) for arg in typing.get_args(annotation))
    return annotation is kind or typing.get_origin(annotation) is kind


class Section(BaseModel):
    """Base of the recipe and its sections: unknown keys are errors; numbers are accepted where text is meant
    (`dataset_config: 2003`); the spellings of YAML files and of the command line are read as their values."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    @field_validator("*", mode="before")
    @classmethod
    def _command_line_spellings(cls, value: Any, info: ValidationInfo) -> Any:
        annotation = cls.model_fields[info.field_name].annotation
        if isinstance(value, os.PathLike):  # the Python API passes paths
            return os.fspath(value)
        if isinstance(value, str) and value.strip().lower() in NULL_WORDS and _allows(annotation, type(None)):
            return None
        if isinstance(value, str) and _allows(annotation, list):  # `lora.target_modules=query,value`
            return [item.strip() for item in value.split(",")] if value.strip() else []
        if isinstance(value, (int, float)) and not isinstance(value, bool) and _allows(annotation, list):
            return [value]  # `lora_r: 8` in a file: one choice
        return value


TagScheme = Literal["auto", "IOB1", "IOB2", "BIOES", "BILOU", "BMES", "BMEWO", "BMEOW"]


class DataConfig(Section):
    """Where the data comes from (a Hub dataset, or local CoNLL / JSON / JSONL files) and how it is read."""

    dataset_name: str | None = Field(None, description="a Hugging Face Hub dataset (or a local `datasets` dir)")
    dataset_config: str | None = Field(None, description="the dataset's configuration name")
    dataset_revision: str | None = Field(None, description="a Hub revision (branch, tag or commit) of the dataset")
    train_file: str | None = Field(None, description="a local training file (CoNLL, JSON or JSONL)")
    validation_file: str | None = Field(None, description="a local validation file; unset: carved out of training")
    test_file: str | None = Field(None, description="a local test file; unset: carved out of training")
    format: Literal["auto", "conll", "json"] = Field("auto", description="file format; auto: from the extension")
    token_column: int = Field(0, description="CoNLL: the column of the word")
    tag_column: int = Field(-1, description="CoNLL: the column of the tag (-1: the last)")
    delimiter: str | None = Field(
        None, description="CoNLL column separator; unset: tab if the line has one, else runs of whitespace"
    )
    comment_prefix: str | None = Field(
        None, description="CoNLL lines starting with it are comments (GermEval, CoNLL-U: `#`)"
    )
    encoding: str = Field(
        "utf-8", description="of CoNLL files (latin-1 for the original German CoNLL-2003); JSON is always UTF-8"
    )
    label_names: list[str] | None = Field(None, description="names for integer tags in JSON files")
    span_alignment: Literal["split", "strict", "expand"] = Field(
        "split",
        description="JSON records with `text` + character spans (CLUENER, Doccano, spaCy, Prodigy, Label Studio): "
        "a span that cuts a word splits the word there (split), takes the whole word (expand) or is an error (strict)",
    )
    nested: Literal["outermost", "error", "keep"] = Field(
        "outermost",
        description="nested or overlapping spans: the outermost (longest) is tagged and the others dropped with a "
        "warning (outermost), refused (error), or kept in a `spans` column beside the outermost tags (keep)",
    )
    nested_tag_columns: list[int] | None = Field(
        None, description="CoNLL columns holding further levels of nested tags (GermEval 2014's inner column: [3])"
    )
    strip_token_suffix: Literal["none", "digit"] = Field(
        "none", description="digit: drop the trailing digit of every CoNLL token (Weibo NER's `中0` suffix)"
    )
    tag_scheme: TagScheme = Field("auto", description="the scheme of the input tags; auto: detected on training data")
    train_scheme: Literal["IOB2", "BIOES"] = Field("IOB2", description="the scheme the model is trained with")
    validation_ratio: float = Field(
        0.1, ge=0, lt=1, description="share of training carved out as validation when no file is given"
    )
    test_ratio: float = Field(0.1, ge=0, lt=1, description="share of training carved out as test when no file is given")
    split_seed: int = Field(42, description="seed of the deterministic split (and of replay sampling)")
    unseen_label_policy: Literal["error", "O"] = Field(
        "error", description="a validation/test entity type never seen in training: an error, or mapped to O (logged)"
    )
    label_map: dict[str, str] | None = Field(
        None,
        description="rename entity TYPES before use, e.g. {PERSON: PER, MISC: O} (O drops the type); on the "
        "command line `data.label_map=PERSON:PER,MISC:O`",
    )
    replay_file: str | None = Field(
        None, description="rehearsal when continuing: an earlier run's training file, sampled into training"
    )
    replay_ratio: float = Field(
        0.5, ge=0, description="replay sentences as a multiple of the training sentences (sampled with split_seed)"
    )
    tokens_field: str | None = Field(None, description="column of the words in a `datasets` dataset; unset: tokens")
    tags_field: str | None = Field(
        None, description="column of the tags in a `datasets` dataset; unset: the first of ner_tags/tags/labels"
    )

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        from nertune.data import check_encoding  # the lower layer that reads the files knows which codecs work

        check_encoding(value)
        return value

    @field_validator("label_map", mode="before")
    @classmethod
    def _label_pairs(cls, value: Any) -> Any:
        """`A:B,C:D` from the command line (a YAML mapping or flow `{A: B}` is already a dict)."""
        if isinstance(value, str):
            pairs: dict[str, str] = {}
            for item in value.split(",") if value.strip() else []:
                source, sep, target = (part.strip() for part in item.partition(":"))
                if not sep or not source or not target:
                    raise ValueError(
                        f"expected FROM:TO pairs separated by commas (e.g. PERSON:PER,LOCATION:LOC), "
                        f"got {item.strip()!r} in {value!r}"
                    )
                if source in pairs:
                    raise ValueError(f"{source!r} is mapped twice in {value!r}")
                pairs[source] = target
            return pairs
        if not isinstance(value, dict) and value is not None:
            raise ValueError(f"expected a mapping (FROM:TO,...), got {value!r}")
        if isinstance(value, dict):
            for source, target in value.items():
                if not str(source or "").strip() or not str(target or "").strip() or isinstance(target, (dict, list)):
                    raise ValueError(f"expected FROM:TO pairs of non-empty names, got {source!r}: {target!r}")
            return {str(k).strip(): str(v).strip() for k, v in value.items()}
        return value


class LoraSection(Section):
    """Low-rank adapters (peft) instead of full fine-tuning; the classifier head is always trained in full."""

    enabled: bool = Field(False, description="train LoRA adapters instead of the whole encoder")
    r: int = Field(8, ge=1, description="adapter rank", json_schema_extra={"hpo": {"search": "choice"}})
    alpha: int = Field(16, gt=0, description="adapter scaling", json_schema_extra={"hpo": {"search": "choice"}})
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout on the adapter input")
    target_modules: list[str] | None = Field(
        None,
        min_length=1,
        description="modules that get adapters; unset: the architecture's attention projections "
        "(BERT/RoBERTa: query, value; DeBERTa-v2/v3: query_proj, value_proj)",
    )
    merge: bool = Field(
        False, description="also write `merged/`: base + adapter folded into a plain model dir that pipeline() loads"
    )


class HpoSettings(Section):
    """`nertune hpo`'s settings; `hpo_space.hpo_section_model` adds a search range per searchable recipe key."""

    n_trials: int = Field(
        20, ge=1, description="trials run by this worker (each worker sharing a storage runs its own)"
    )
    timeout_s: float | None = Field(None, gt=0, description="stop starting new trials after this many seconds")
    pruning: bool = Field(False, description="optuna MedianPruner on the validation F1 of every evaluation")
    seed: int = Field(42, description="the sampler's seed (with a shared storage each worker adds its process id)")
    storage: str | None = Field(
        None, description="optuna RDB URL shared by several workers, e.g. sqlite:///hpo.db; unset: in memory"
    )
    study_name: str | None = Field(None, description="default: nertune-<output_dir name>")

    space: ClassVar[dict[str, Dimension]] = {}  # set by hpo_section_model

    @model_validator(mode="after")
    def _ranges_within_the_fields_bounds(self) -> HpoSettings:
        check_ranges(self)
        return self


def load_yaml_value(text: str, annotation: Any) -> Any:
    """A command-line value as YAML reads it (`[1e-5, 1e-4]`, `{A: B}`, `true`, `3`), where that fits the field's
    type `annotation`; else the text itself, which the field's validators read: `save_strategy=no` (not YAML's
    false), `hpo.lora_r=4,8` and `data.label_map=PERSON:PER` (their own lists), `comment_prefix=#` (not a comment)."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if value is None and text.strip().lower() not in ("", *NULL_WORDS):
        return text
    if not isinstance(value, (str, int, float, bool, list, dict, type(None))):  # dates
        return text
    if isinstance(value, bool) and not _allows(annotation, bool):
        return text
    if value is not None and _allows(annotation, list) and not isinstance(value, list):
        return text
    if value is not None and _allows(annotation, dict) and not text.strip().startswith("{"):
        return text
    return value
