"""Pushing a run dir of any kind (full model, CRF head, LoRA adapter) with its model card.

Pushing checks the Hub (repo id, token, reachability, write access) BEFORE training starts, so an offline
machine or a missing token fails in seconds, not after hours of training.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from nertune.errors import ModelNotFoundError, NertuneError
from nertune.hub.modelcard import base_model_hub_id, read_run_recipe, render_model_card, write_model_card
from nertune.model.references import recipe_path

__all__ = [
    "HubError",
    "ModelNotFoundError",
    "check_hub_access",
    "check_run_dir",
    "files_to_upload",
    "push_run",
    "render_model_card",
    "write_model_card",
]

logger = logging.getLogger(__name__)

# What goes to the Hub: the model or adapter (and merged/), its tokenizer, the card and the run's reports;
# never checkpoints.
UPLOAD_IGNORE = ["checkpoints/*", "checkpoints/**", "runs/**", "*.pt", "optimizer.*"]
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")
_ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")


class HubError(NertuneError):
    """Pushing to the Hub cannot work; the message says why and what to do."""


def check_hub_access(repo_id: str | None, token: str | None = None):
    """Fail fast, before training, for every kind of run: a valid repo id, a token, a Hub that answers, and
    a token that may write. Returns the `HfApi` to push with."""
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
        identity = api.whoami()
    except Exception as e:  # offline, DNS failure, proxy, invalid token: all end the same way
        raise HubError(
            f"push_to_hub: the Hugging Face Hub cannot be reached or refused the token "
            f"({type(e).__name__}: {e}); train without push_to_hub and run `make push RUN=...` later"
        ) from None
    role = ((identity or {}).get("auth") or {}).get("accessToken", {}).get("role")
    if role == "read":
        raise HubError(
            f"push_to_hub: the Hugging Face token of {identity.get('name', '?')!r} is read-only; "
            "create a token with write access (https://huggingface.co/settings/tokens)"
        )
    return api


def check_run_dir(run_dir: str | Path) -> str:
    """'model' (full model, CRF head included) or 'adapter' (LoRA); HubError naming what a push would miss."""
    run_dir = Path(run_dir)
    missing = []
    if (run_dir / "config.json").is_file():
        kind = "model"
    elif (run_dir / "adapter_config.json").is_file():
        kind = "adapter"
        if not any((run_dir / name).is_file() for name in _ADAPTER_WEIGHTS):
            missing.append(" or ".join(_ADAPTER_WEIGHTS))
        if not (run_dir / "nertune_adapter.json").is_file():
            missing.append("nertune_adapter.json (the adapter's labels)")
    else:
        kind = "?"
        missing.append("config.json (a model) or adapter_config.json (a LoRA adapter)")
    if recipe_path(run_dir) is None:
        missing.append("recipe.yaml (or config.yaml)")
    if not (run_dir / "metrics.json").is_file():
        missing.append("metrics.json")
    if missing:
        raise HubError(f"{run_dir} is not a finished run directory: {', '.join(missing)} missing")
    return kind


def files_to_upload(run_dir: str | Path) -> list[str]:
    """Paths (relative, POSIX) of the run dir that a push uploads: everything but checkpoints and logs.

    A LoRA run's merged/ (base + adapter folded into a plain model) goes too when it was written: it is what
    `pipeline()` users load (the card shows how); the adapter alone needs peft and the base model."""
    from huggingface_hub.utils import filter_repo_objects

    run_dir = Path(run_dir)
    files = sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if p.is_file())
    return list(filter_repo_objects(files, ignore_patterns=UPLOAD_IGNORE))


def _portable_adapter_config(run_dir: Path) -> bytes | None:
    """adapter_config.json naming its base model by Hub id instead of this machine's path, when the id is known."""
    config = json.loads((run_dir / "adapter_config.json").read_text(encoding="utf-8"))
    base_id = base_model_hub_id(str(read_run_recipe(run_dir).get("model_name_or_path", "")))
    if not base_id or config.get("base_model_name_or_path") == base_id:
        return None
    logger.info(
        "push: adapter_config.json names its base model %s (here: %s)", base_id, config.get("base_model_name_or_path")
    )
    config["base_model_name_or_path"] = base_id
    return (json.dumps(config, indent=2, sort_keys=True) + "\n").encode("utf-8")


def push_run(
    run_dir: str | Path, repo_id: str, private: bool = False, api=None, commit_message: str | None = None
) -> str:
    """Upload a run dir of any kind (model, tokenizer, card, metrics, recipe; no checkpoints) to `repo_id`."""
    from huggingface_hub import CommitOperationAdd

    run_dir = Path(run_dir)
    kind = check_run_dir(run_dir)
    api = api or check_hub_access(repo_id)
    write_model_card(run_dir, repo_id)
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    message = commit_message or f"nertune: test entity F1 {metrics.get('test_f1', float('nan')):.4f}"
    replaced = {"adapter_config.json": _portable_adapter_config(run_dir)} if kind == "adapter" else {}
    operations = [
        CommitOperationAdd(path_in_repo=rel, path_or_fileobj=replaced.get(rel) or str(run_dir / rel))
        for rel in files_to_upload(run_dir)
    ]
    api.create_repo(repo_id, private=private, exist_ok=True)
    # One commit with exactly the files listed above (create_commit is where the network starts).
    info = api.create_commit(repo_id=repo_id, operations=operations, commit_message=message)
    return str(getattr(info, "commit_url", info))
