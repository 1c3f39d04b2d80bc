"""Model references: `pkg://` paths, local dirs and Hub ids (through the Hugging Face cache, offline too) to a
local dir; adapter dirs; a run's recipe file.

Resolving a reference downloads at most; publishing a run lives in `nertune.hub`, so loading a model never
imports the model-card renderer.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from nertune.assets import is_package_path, resolve_path
from nertune.errors import ModelNotFoundError, RequestError

RECIPE_FILE = "recipe.yaml"  # the resolved recipe of a run, beside HF's config.json
# A Hub model id: `name` or `owner/name`.
HUB_MODEL_ID = re.compile(r"^(?:[A-Za-z0-9][\w.-]{0,95}/)?[A-Za-z0-9][\w.-]{0,95}$")


def resolve_model_path(name_or_path: str, base_dir: str | Path = ".") -> str:
    """A `pkg://` path or an existing local dir becomes an absolute path; anything else is a Hub name.

    A string that looks like a local path (starts with `.`, `/` or `~`, or contains the OS separator and
    exists partly) but does not exist is an error here, rather than a confusing Hub lookup later.
    """
    if is_package_path(name_or_path):
        return str(resolve_path(name_or_path))
    local = Path(name_or_path).expanduser()
    if not local.is_absolute():
        local = Path(base_dir) / local
    if local.exists():
        if not (local / "config.json").is_file() and not is_adapter_dir(local):
            raise ModelNotFoundError(f"model path {name_or_path!r} exists but has no config.json ({local})")
        return str(local)
    if name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1 or os.sep + os.sep in name_or_path:
        raise ModelNotFoundError(f"model path {name_or_path!r} does not exist ({local})")
    return name_or_path  # a Hub id such as `bert-base-cased` or `org/model`


def is_adapter_dir(path: str | Path) -> bool:
    """A LoRA adapter directory (peft's `adapter_config.json`, no `config.json`) rather than a full model."""
    return (Path(path) / "adapter_config.json").is_file()


def recipe_path(run_dir: str | Path) -> Path | None:
    """The run's saved recipe (`recipe.yaml`, the record of the run), None when it has none."""
    path = Path(run_dir) / RECIPE_FILE
    return path if path.is_file() else None


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def hub_offline() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) as set now; huggingface_hub reads it once, at import."""
    from huggingface_hub import constants

    return _env_true("HF_HUB_OFFLINE") or _env_true("TRANSFORMERS_OFFLINE") or constants.HF_HUB_OFFLINE


def hub_cache_dir() -> Path:
    """The Hugging Face cache as the environment names it now (HF_HUB_CACHE, HF_HOME/hub, the default)."""
    from huggingface_hub import constants

    for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(variable):
            return Path(os.environ[variable]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path(constants.HF_HUB_CACHE)


def _model_dir(path: Path, reference: str) -> Path:
    if not (path / "config.json").is_file() and not (path / "adapter_config.json").is_file():
        raise ModelNotFoundError(
            f"model {reference!r}: {path} has neither config.json (a model) nor adapter_config.json (a LoRA adapter)"
        )
    return path


def split_revision(reference: str, revision: str | None = None) -> tuple[str, str | None]:
    """`owner/name@rev` -> (`owner/name`, `rev`); a separate `revision` must agree with the pin."""
    repo_id, at, pinned = reference.partition("@")
    if not at:
        return reference, revision
    if not pinned:
        raise RequestError(f"model {reference!r}: empty revision after '@'")
    if revision is not None and revision != pinned:
        raise RequestError(f"model {reference!r} pins revision {pinned!r}, but revision={revision!r} was also given")
    return repo_id, pinned


def resolve_model_reference(name_or_path: str | Path, revision: str | None = None) -> Path:
    """The local dir of a model or LoRA adapter: a local dir (or `pkg://` path) as given, else a Hub id
    (`owner/name`, `owner/name@revision`) through the Hugging Face cache: from the cache alone when
    HF_HUB_OFFLINE=1, else downloaded when missing. Raises ModelNotFoundError naming what was tried."""
    reference = str(name_or_path)
    if is_package_path(reference):
        return _model_dir(resolve_path(reference), reference)
    local = Path(reference).expanduser()
    if local.exists():
        return _model_dir(local.resolve(), reference)
    repo_id, revision = split_revision(reference, revision)
    if not HUB_MODEL_ID.match(repo_id):
        raise ModelNotFoundError(
            f"model directory not found: {local.absolute()} (and {reference!r} is not a Hub repo id owner/name)"
        )
    from huggingface_hub import snapshot_download
    from huggingface_hub.file_download import repo_folder_name

    cache, offline = hub_cache_dir(), hub_offline()
    try:
        path = snapshot_download(repo_id, revision=revision, cache_dir=cache, local_files_only=offline)
    except Exception as e:  # not cached, unknown repo or revision, gated, offline, DNS: all end the same way
        storage = cache / repo_folder_name(repo_id=repo_id, repo_type="model")
        cached = (
            f"no snapshot of revision {revision or 'main'} in {storage}"
            if storage.is_dir()
            else f"not in the Hugging Face cache {cache}"
        )
        hub = (
            "not asked (HF_HUB_OFFLINE=1)"
            if offline
            else f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else 'no answer'}"
        )
        raise ModelNotFoundError(
            f"model {reference!r} not found: no local path {local.absolute()}; {cached}; Hub: {hub}"
        ) from None
    return _model_dir(Path(path), reference)
