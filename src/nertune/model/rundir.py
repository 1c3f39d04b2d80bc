"""A run directory, read once: what `nertune train` wrote and what evaluating, predicting and serving need.

A run dir is a full model dir (`config.json`, weights) or a LoRA adapter dir (`adapter_config.json`,
`nertune_adapter.json`) or an ONNX export (`nertune export`: `config.json` and `model.onnx`, run by ONNX
Runtime), with its tokenizer and the resolved recipe (`recipe.yaml`; `config.yaml` in run dirs of older
versions). Any HF token-classification checkpoint loads too: without a recipe, windows take
the recipe defaults and the scheme follows from the labels.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nertune.errors import ModelError, ModelNotFoundError
from nertune.heads import head_of
from nertune.model.loading import load_for_inference, load_model_config, load_tokenizer, trained_labels
from nertune.model.references import is_adapter_dir, recipe_path, resolve_model_reference
from nertune.recipe.schema import Recipe, RecipeError, load_recipe
from nertune.schemes import normalize_scheme, parse_tag

logger = logging.getLogger(__name__)

ONNX_FILE = "model.onnx"  # the weights of an ONNX export (`nertune export`), run by `backends.OnnxBackend`


def scheme_from_labels(labels: Sequence[str]) -> str:
    """BIOES when any label has an E-/S- prefix, else IOB2."""
    return "BIOES" if any(parse_tag(label)[0] in ("E", "S") for label in labels) else "IOB2"


def load_run_recipe(run_dir: str | Path) -> Recipe | None:
    """The recipe saved in a run dir (`recipe.yaml`, or an older run's `config.yaml`); None when it has none.
    Raises `RecipeError` when the file is not a valid recipe."""
    path = recipe_path(run_dir)
    return load_recipe(path) if path is not None else None


@dataclass
class RunDir:
    """What a run dir holds, read once by `RunDir.load`; `load_model` and `load_tokenizer` load the rest."""

    path: Path
    recipe_file: Path | None  # the saved recipe, None when the dir has none
    recipe: Recipe | None  # None without a recipe file, or when it is not a valid recipe (a warning says why)
    id2label: dict[int, str]
    scheme: str
    head_name: str
    is_adapter: bool
    max_length: int
    window_overlap: int
    context_size: int
    is_onnx: bool = False  # an ONNX export: `model.onnx` holds the weights (`backends.OnnxBackend`)

    @property
    def labels(self) -> list[str]:
        return [self.id2label[i] for i in sorted(self.id2label)]

    @classmethod
    def load(cls, path: str | Path, revision: str | None = None) -> RunDir:
        """Read a model dir written by `nertune train` (or any HF token-classification checkpoint): a local
        dir, or a Hub id (`owner/name`, `owner/name@revision`) through the Hugging Face cache
        (`references.resolve_model_reference`; offline from the cache with HF_HUB_OFFLINE=1).

        `max_length`, `window_overlap`, `context_size` and the tag scheme come from the saved recipe;
        without one (or with one this version cannot read) 128/32/0 and the scheme of the labels.
        """
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
        recipe_file = recipe_path(path)
        recipe = None
        try:
            recipe = load_run_recipe(path)
        except RecipeError as e:
            # A recipe from another nertune version must not make its model unusable; windows only need sizes.
            logger.warning("%s; using default max_length/window_overlap/context_size and the scheme of the labels", e)
        scheme = scheme_from_labels(labels)
        if recipe is not None:
            trained_scheme = normalize_scheme(recipe.data.train_scheme)
            if trained_scheme != scheme:
                logger.warning(
                    "%s says train_scheme=%s but the labels look %s; reading tags as %s",
                    recipe_file,
                    trained_scheme,
                    scheme,
                    trained_scheme,
                )
            scheme = trained_scheme
        sizes = recipe or Recipe()
        return cls(
            path=path,
            recipe_file=recipe_file,
            recipe=recipe,
            id2label=dict(enumerate(labels)),
            scheme=scheme,
            head_name=head_of(config).name,
            is_adapter=adapter,
            max_length=sizes.max_length,
            window_overlap=sizes.window_overlap,
            context_size=sizes.context_size,
            is_onnx=(path / ONNX_FILE).is_file(),
        )

    def recipe_with(self, overrides: Sequence[str] = ()) -> Recipe:
        """The saved recipe (defaults without one) for this model dir, with `key=value` overrides applied;
        raises `RecipeError` for a saved recipe that is not valid."""
        return load_recipe(self.recipe_file, [f"model_name_or_path={self.path}", *overrides])

    def load_config(self):
        """config.json (labels, head); for a LoRA adapter dir, the base model's config with the adapter's labels."""
        return load_model_config(str(self.path))

    def load_model(self):
        """The model with its head, in eval mode (a LoRA adapter dir: on a fresh base model, not merged)."""
        if self.is_onnx:
            raise ModelError(
                f"{self.path} is an ONNX export ({ONNX_FILE}): it has no PyTorch weights; "
                "predict and serve run it with ONNX Runtime"
            )
        return load_for_inference(str(self.path))

    def load_tokenizer(self):
        return load_tokenizer(str(self.path))
