"""The `nertune` section of a model dir's config.json: everything inference needs to know about a trained model
(head, tag scheme, window and context sizes, CoNLL layout, LoRA adapter or full model, base model, calibration).

Written at training time (`training.run`), so a model dir describes itself the way a SpanMarker model keeps its
settings in its config: predicting and serving read config.json and never the run's recipe.yaml (which stays in
the run dir as the record of the run). A plain HF token-classification checkpoint has no section: the linear
head, windows of 128/32, no context and the scheme of its labels.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nertune.errors import ModelError
from nertune.heads import Head, get_head
from nertune.schemes import normalize_scheme, parse_tag

SECTION = "nertune"  # the config.json key


def scheme_from_labels(labels: Sequence[str]) -> str:
    """BIOES when any label has an E-/S- prefix, else IOB2."""
    return "BIOES" if any(parse_tag(label)[0] in ("E", "S") for label in labels) else "IOB2"


@dataclass
class ModelSettings:
    """What inference needs of a trained model (config.json's `nertune` section)."""

    head: str = "linear"
    scheme: str = "IOB2"
    max_length: int = 128
    window_overlap: int = 32
    context_size: int = 0
    adapter: bool = False  # a LoRA adapter dir (adapter_config.json + adapter weights) rather than a full model
    base_model: str | None = None  # the encoder it was trained from, as the recipe named it (`pkg://...`)
    # How CoNLL input is read by default (the training data's layout).
    token_column: int = 0
    delimiter: str | None = None
    comment_prefix: str | None = None
    head_settings: dict[str, Any] = field(default_factory=dict)  # a head's own settings (`Head.settings`)
    # Temperature scaling fitted at the end of training (`evaluation.calibration`): {"temperature",
    # "ece_before", "ece_after"}; None for an uncalibrated model.
    calibration: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config: Any, labels: Sequence[str] | None = None) -> ModelSettings:
        """The section of a loaded config (a `PretrainedConfig` or a dict); without one, the defaults with the
        scheme of `labels`."""
        section = config.get(SECTION) if isinstance(config, Mapping) else getattr(config, SECTION, None)
        if section is None:
            return cls(scheme=scheme_from_labels(labels or []))
        if not isinstance(section, Mapping):
            raise ModelError(f"config.json: {SECTION!r} must be a mapping, got {type(section).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(section) - known)
        if unknown:
            raise ModelError(
                f"config.json: unknown keys in the {SECTION!r} section: {unknown} (known: {sorted(known)})"
            )
        settings = cls(**section)
        settings.scheme = normalize_scheme(settings.scheme)
        return settings

    def write_to(self, config: Any) -> None:
        """Set the section on a `PretrainedConfig` (saved with it by `save_pretrained`)."""
        setattr(config, SECTION, self.to_dict())


def settings_of(config: Any) -> ModelSettings:
    """The `nertune` section of a model's config (or of a model), defaults for an unmarked checkpoint."""
    config = getattr(config, "config", config)
    id2label = getattr(config, "id2label", None) or {}
    labels = [str(id2label[i]) for i in sorted(id2label, key=int)] if id2label else []
    return ModelSettings.from_config(config, labels)


def head_of(config: Any) -> Head:
    """The head a model (or its config) was trained with: its section's `head`, linear when unmarked."""
    settings = settings_of(config)
    return get_head(settings.head).from_settings(settings.scheme, settings.head_settings)


def temperature_of(config: Any) -> float | None:
    """The calibration temperature of a model (or its config); None when it was not calibrated."""
    return (settings_of(config).calibration or {}).get("temperature")
