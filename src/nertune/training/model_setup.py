"""The model a training run starts from: the pretrained encoder (or a fine-tuned model, or a LoRA adapter) with
the recipe's head, and the `nertune` section of its config.json (`model.settings.ModelSettings`), written
before training so every checkpoint and the final run dir describe themselves."""

from __future__ import annotations

from typing import Any

from nertune.errors import ModelError
from nertune.heads import head_for_recipe
from nertune.model.loading import is_adapter_dir, load_model_for_training
from nertune.model.lora import adapter_base_reference, apply_lora, load_adapter_model
from nertune.model.settings import ModelSettings
from nertune.recipe.schema import Recipe

# `data` below is `training.run.PreparedData` (run.py imports this module, so it is not imported back).


def model_settings(recipe: Recipe, model_path: str, data: Any) -> ModelSettings:
    """The `nertune` section of the model's config.json: what inference needs to know about the run."""
    head = head_for_recipe(recipe, data.scheme)
    base = recipe.model_name_or_path
    if recipe.lora.enabled and is_adapter_dir(model_path):
        base = adapter_base_reference(model_path)
    return ModelSettings(
        head=head.name,
        scheme=data.scheme,
        max_length=recipe.max_length,
        window_overlap=recipe.window_overlap,
        context_size=recipe.context_size,
        adapter=recipe.lora.enabled,
        base_model=base,
        token_column=recipe.data.token_column,
        delimiter=recipe.data.delimiter,
        comment_prefix=recipe.data.comment_prefix,
        head_settings=head.settings(),
    )


def build_model(recipe: Recipe, model_path: str, data: Any):
    """A fresh model for the recipe: the pretrained encoder with its head, LoRA-wrapped when lora.enabled.

    From a fine-tuned model: its head continues (grown by the head when label_mismatch=extend adds labels).
    From a LoRA adapter dir: with lora.enabled the same adapter trains further; without, it is merged into
    its base and the whole model trains.
    """
    head = head_for_recipe(recipe, data.scheme)
    settings = model_settings(recipe, model_path, data)
    extending = data.keep_head and len(data.labels) > len(data.start_labels or [])
    if is_adapter_dir(model_path) and recipe.lora.enabled:
        if extending:
            raise ModelError(
                f"{model_path} is a LoRA adapter: extending its labels needs lora.enabled=false "
                "(merge it, then train in full)"
            )
        model = load_adapter_model(model_path, trainable=True)
        settings.write_to(model.get_base_model().config)
        return model
    # Continuing a fine-tuned model whose head is kept continues the head's own saved weights too.
    model = load_model_for_training(model_path, data.labels, data.keep_head, settings)
    if not data.keep_head and recipe.head_bias_init == "prior":
        head.start_at_label_prior(model, data.train_features)
    if extending:
        head.extend_labels(model, data.start_labels, data.labels)
    if recipe.lora.enabled:
        model = apply_lora(model, recipe.lora)
    return model
