"""The model card every run gets, and pushing a run directory to the Hugging Face Hub.

The card is written whether or not the run is pushed: a run dir is self-describing. Pushing checks
the Hub (token, reachability, repo id) BEFORE training starts, so an offline machine or a missing
token fails in seconds, not after hours of training.
"""

from __future__ import annotations

import json
import platform
import re
from pathlib import Path
from typing import Any

import yaml

from .errors import NertuneError

# What goes to the Hub: the model, its tokenizer, the card and the run's reports; never checkpoints.
UPLOAD_IGNORE = ["checkpoints/*", "checkpoints/**", "runs/**", "*.pt", "optimizer.*"]
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")


class HubError(NertuneError):
    """Pushing to the Hub cannot work; the message says why and what to do."""


def _hardware() -> str:
    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    return f"CPU ({platform.processor() or platform.machine()}), {torch.get_num_threads()} threads"


def _dataset_name(recipe: dict) -> str:
    data = recipe.get("data", {})
    if data.get("dataset_name"):
        return data["dataset_name"]
    return Path(data.get("train_file") or "local data").name


def _metrics_table(metrics: dict, split: str) -> str:
    per_type = metrics.get(f"{split}_per_type") or {}
    rows = ["| type | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for type_, s in sorted(per_type.items()):
        rows.append(f"| {type_} | {s['precision']:.4f} | {s['recall']:.4f} | {s['f1']:.4f} | {s['support']} |")
    rows.append(f"| **micro avg** | {metrics[f'{split}_precision']:.4f} | {metrics[f'{split}_recall']:.4f} | "
                f"**{metrics[f'{split}_f1']:.4f}** | |")
    return "\n".join(rows)


def render_model_card(run_dir: str | Path, repo_id: str | None = None) -> str:
    """README.md for a run dir: Hub metadata (model-index with F1), metrics, recipe, usage, limits."""
    run_dir = Path(run_dir)
    recipe = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    base_model = str(recipe["model_name_or_path"])
    dataset = _dataset_name(recipe)
    name = repo_id or run_dir.name
    results = [{"task": {"type": "token-classification", "name": "Named Entity Recognition"},
                "dataset": {"type": dataset, "name": dataset, "split": split},
                "metrics": [{"type": "f1", "value": round(metrics[f"{split}_f1"], 4), "name": f"{split} entity F1"},
                            {"type": "precision", "value": round(metrics[f"{split}_precision"], 4)},
                            {"type": "recall", "value": round(metrics[f"{split}_recall"], 4)}]}
               for split in ("validation", "test") if f"{split}_f1" in metrics]
    metadata: dict[str, Any] = {
        "library_name": "transformers",
        "pipeline_tag": "token-classification",
        "tags": ["token-classification", "ner", "nertune"],
        "model-index": [{"name": name, "results": results}],
    }
    if not base_model.startswith(("pkg://", "/", ".")):
        metadata["base_model"] = base_model  # the Hub validates it as a repo id: only for Hub models
    if recipe.get("data", {}).get("dataset_name"):
        metadata["datasets"] = [dataset]
    hyper = {k: recipe[k] for k in ("learning_rate", "num_train_epochs", "max_steps", "per_device_train_batch_size",
                                    "gradient_accumulation_steps", "weight_decay", "warmup_ratio", "lr_scheduler_type",
                                    "max_length", "window_overlap", "context_size", "seed") if k in recipe}
    labels = metrics.get("labels", [])
    types = sorted({label.split("-", 1)[1] for label in labels if "-" in label})
    repo = repo_id or str(run_dir)
    return f"""---
{yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True).strip()}
---

# {name}

A named-entity recognition model fine-tuned with [nertune](https://pypi.org/project/nertune/) from
`{base_model}` on **{dataset}**. Entity types: {", ".join(types) or "none"}; tags in the
{metrics.get("train_scheme", "IOB2")} scheme.

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
- Hyperparameters (the full resolved recipe is `config.yaml` in this repository):

```yaml
{yaml.safe_dump(hyper, sort_keys=False).strip()}
```

## Usage

```python
from transformers import pipeline

ner = pipeline("token-classification", model="{repo}", aggregation_strategy="first")
ner("Barack Obama visited Paris")
```

With nertune (long texts are windowed, no word is dropped):

```bash
nertune predict {repo} --input texts.txt --output entities.jsonl
```
{_context_note(recipe.get("context_size", 0), repo)}
## Intended use and limitations

Tagging the entity types above in text similar to the training data ({dataset}). Scores are measured on a
held-out split of that data; expect lower scores on other domains, languages or spelling conventions.
The model reflects the biases and annotation conventions of its training corpus and should not be used
for decisions about individuals without human review.
"""


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


def check_hub_access(repo_id: str | None, token: str | None = None):
    """Fail fast: a valid repo id, a token, and a Hub that answers. Returns the `HfApi` to push with."""
    from huggingface_hub import HfApi, get_token

    if not repo_id:
        raise HubError("push_to_hub needs hub_model_id (e.g. hub_model_id=your-name/bert-ner)")
    if not _REPO_ID.match(repo_id):
        raise HubError(f"hub_model_id {repo_id!r} is not a Hub repo id of the form 'owner/name'")
    token = token or get_token()
    if not token:
        raise HubError("push_to_hub: no Hugging Face token; run `huggingface-cli login` or set HF_TOKEN")
    api = HfApi(token=token)
    try:
        api.whoami()
    except Exception as e:  # offline, DNS failure, proxy, invalid token: all end the same way
        raise HubError(f"push_to_hub: the Hugging Face Hub cannot be reached or refused the token "
                       f"({type(e).__name__}: {e}); train without push_to_hub and run `make push RUN=...` later") from None
    return api


def push_run(run_dir: str | Path, repo_id: str, private: bool = False, api=None,
             commit_message: str | None = None) -> str:
    """Upload a run dir (model, tokenizer, card, metrics, recipe; no checkpoints) to `repo_id`."""
    run_dir = Path(run_dir)
    for required in ("config.json", "config.yaml", "metrics.json"):
        if not (run_dir / required).is_file():
            raise HubError(f"{run_dir} is not a finished run directory: {required} is missing")
    api = api or check_hub_access(repo_id)
    write_model_card(run_dir, repo_id)
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    message = commit_message or f"nertune: test entity F1 {metrics.get('test_f1', float('nan')):.4f}"
    from huggingface_hub import CommitOperationAdd

    operations = [CommitOperationAdd(path_in_repo=rel, path_or_fileobj=str(run_dir / rel)) for rel in files_to_upload(run_dir)]
    api.create_repo(repo_id, private=private, exist_ok=True)
    # One commit with exactly the files listed above (create_commit is where the network starts).
    info = api.create_commit(repo_id=repo_id, operations=operations, commit_message=message)
    return str(getattr(info, "commit_url", info))


def files_to_upload(run_dir: str | Path) -> list[str]:
    """Paths (relative, POSIX) of the run dir that a push uploads: everything but checkpoints and logs."""
    from huggingface_hub.utils import filter_repo_objects

    run_dir = Path(run_dir)
    files = sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if p.is_file())
    return list(filter_repo_objects(files, ignore_patterns=UPLOAD_IGNORE))
