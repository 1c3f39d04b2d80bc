"""A run directory, read once: what `nertune train` wrote and what evaluating, predicting and serving need.

A run dir is a full model dir (`config.json`, weights) or a LoRA adapter dir (`adapter_config.json`,
`nertune_adapter.json`) or an ONNX export (`nertune export`: `config.json` and `model.onnx`, run by ONNX
Runtime), with its tokenizer. Everything inference needs is in its config's `nertune` section
(`settings.ModelSettings`: head, scheme, window and context sizes, CoNLL layout); the resolved recipe
(`recipe.yaml`) stays beside it as the record of the run, read only by `recipe_with` (evaluation, export).
Any HF token-classification checkpoint loads too: without a section, windows take the defaults and the
scheme follows from the labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nertune.errors import ModelError, ModelNotFoundError
from nertune.model.loading import load_for_inference, load_model_config, load_tokenizer, trained_labels
from nertune.model.references import RECIPE_FILE, is_adapter_dir, resolve_model_reference
from nertune.model.settings import ModelSettings, scheme_from_labels
from nertune.recipe.schema import Recipe, load_recipe

__all__ = ["ONNX_FILE", "RunDir", "scheme_from_labels"]

ONNX_FILE = "model.onnx"  # the weights of an ONNX export (`nertune export`), run by `backends.OnnxBackend`


@dataclass
class RunDir:
    """What a run dir holds, read once by `RunDir.load`; `load_model` and `load_tokenizer` load the rest."""

    path: Path
    config: Any  # the loaded config.json (for an adapter dir: the base's, with the adapter's labels and section)
    settings: ModelSettings
    id2label: dict[int, str]
    is_adapter: bool
    is_onnx: bool = False  # an ONNX export: `model.onnx` holds the weights (`backends.OnnxBackend`)

    @property
    def labels(self) -> list[str]:
        return [self.id2label[i] for i in sorted(self.id2label)]

    @property
    def scheme(self) -> str:
        return self.settings.scheme

    @property
    def head_name(self) -> str:
        return self.settings.head

    @property
    def max_length(self) -> int:
        return self.settings.max_length

    @property
    def window_overlap(self) -> int:
        return self.settings.window_overlap

    @property
    def context_size(self) -> int:
        return self.settings.context_size

    @property
    def recipe_file(self) -> Path | None:
        """The run's saved recipe (the record of the run), None when the dir has none."""
        path = self.path / RECIPE_FILE
        return path if path.is_file() else None

    @classmethod
    def load(cls, path: str | Path, revision: str | None = None) -> RunDir:
        """Read a model dir written by `nertune train` (or any HF token-classification checkpoint): a local
        dir, or a Hub id (`owner/name`, `owner/name@revision`) through the Hugging Face cache
        (`references.resolve_model_reference`; offline from the cache with HF_HUB_OFFLINE=1).
        config.json is read here, once; the model and the tokenizer load with it."""
        path = resolve_model_reference(path, revision)
        if not path.is_dir():
            raise ModelNotFoundError(f"model directory not found: {path}")
        adapter = is_adapter_dir(path)
        if not adapter and not (path / "config.json").is_file():
            raise ModelNotFoundError(f"{path} has no config.json: not a trained model directory")
        config = load_model_config(str(path))
        labels = trained_labels(config)
        if labels is None:  # checked before loading the model, which would warn about a fresh, random head
            raise ModelError(f"{path}: config.json has no NER labels (id2label); is it a fine-tuned model?")
        return cls(
            path=path,
            config=config,
            settings=ModelSettings.from_config(config, labels),
            id2label=dict(enumerate(labels)),
            is_adapter=adapter,
            is_onnx=(path / ONNX_FILE).is_file(),
        )

    def load_recipe(self) -> Recipe | None:
        """The run's saved recipe, None without one; raises `RecipeError` when it is not a valid recipe."""
        return load_recipe(self.recipe_file) if self.recipe_file is not None else None

    def recipe_with(self, overrides: Sequence[str] = ()) -> Recipe:
        """The saved recipe (defaults without one) for this model dir, with `key=value` overrides applied;
        raises `RecipeError` for a saved recipe that is not valid."""
        return load_recipe(self.recipe_file, [f"model_name_or_path={self.path}", *overrides])

    def load_model(self):
        """The model with its head, in eval mode (a LoRA adapter dir: on a fresh base model, not merged)."""
        if self.is_onnx:
            raise ModelError(
                f"{self.path} is an ONNX export ({ONNX_FILE}): it has no PyTorch weights; "
                "predict and serve run it with ONNX Runtime"
            )
        return load_for_inference(str(self.path), self.config)

    def load_tokenizer(self):
        return load_tokenizer(str(self.path), self.config)
