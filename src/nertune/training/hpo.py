"""Hyperparameter search: the recipe's `hpo` space, searched by optuna through `Trainer.hyperparameter_search`.

Every trial trains a fresh model (`model_init`) with the Trainer that `run_training` builds (same data,
features, metric); the objective is the validation entity F1 of the trial's last evaluation. Outputs in
`<output_dir>/hpo/`: `trials.csv` (one row per trial of the study) and `best_recipe.yaml` (the recipe with
the best parameters applied and no `hpo` section: `nertune train best_recipe.yaml` trains the final model).
"""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path
from typing import Any

import yaml

from nertune.errors import MissingDependencyError
from nertune.recipe.hpo_space import hpo_field
from nertune.recipe.schema import HPO_SPACE, HpoSection, Recipe, RecipeError, recipe_to_dict
from nertune.training.model_setup import build_model
from nertune.training.run import build_trainer, setup_run

logger = logging.getLogger(__name__)

RECIPE_KEY_OF_FIELD: dict[str, str] = {hpo_field(key): key for key in HPO_SPACE}


def searched(hpo: HpoSection) -> list[str]:
    """The dimensions the recipe searches (set in its `hpo` section), as `hpo` field names."""
    return [hpo_field(key) for key in HPO_SPACE if getattr(hpo, hpo_field(key)) is not None]


def suggest(trial, hpo: HpoSection) -> dict[str, Any]:
    """Sample one point of the space, keyed by `hpo` field name; optuna returns the same value when a name is
    suggested again in a trial."""
    params: dict[str, Any] = {}
    for key, dimension in HPO_SPACE.items():
        name = hpo_field(key)
        values = getattr(hpo, name)
        if values is None:
            continue
        if dimension.search == "choice":
            params[name] = trial.suggest_categorical(name, list(values))
        elif dimension.value_type is int:
            params[name] = trial.suggest_int(name, *values, log=dimension.log)
        else:
            params[name] = trial.suggest_float(name, *values, log=dimension.log)
    return params


def apply_params(recipe: Recipe, params: dict[str, Any]) -> Recipe:
    """A copy of the recipe with searched values set at their recipe keys (lora_r -> lora.r)."""
    out = recipe.model_copy(deep=True)
    for name, value in params.items():
        if name not in RECIPE_KEY_OF_FIELD:
            raise RecipeError(f"hpo: unknown searched parameter {name!r}")
        *sections, field = RECIPE_KEY_OF_FIELD[name].split(".")
        target = out
        for section in sections:
            target = getattr(target, section)
        # The recipe field's own type: num_train_epochs is a float there, searched as an integer.
        setattr(target, field, type(getattr(target, field))(value))
    return out


def training_arguments_of(params: dict[str, Any]) -> dict[str, Any]:
    """The TrainingArguments a trial sets through the Trainer (`hp_space`); the rest reach model_init."""
    out = {}
    for name, value in params.items():
        argument = HPO_SPACE[RECIPE_KEY_OF_FIELD[name]].training_argument
        if argument is not None:
            out[argument] = value
    return out


def write_trials_csv(study, path: Path) -> int:
    """One row per trial: number, state, objective, duration, then one column per parameter."""
    trials = study.get_trials(deepcopy=False)
    names = sorted({name for t in trials for name in t.params})
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["number", "state", "objective", "duration_s", *names])
        for t in trials:
            duration = t.duration.total_seconds() if t.duration is not None else ""
            writer.writerow(
                [
                    t.number,
                    t.state.name,
                    "" if t.value is None else t.value,
                    "" if duration == "" else round(duration, 3),
                    *(t.params.get(n, "") for n in names),
                ]
            )
    return len(trials)


def write_best_recipe(recipe: Recipe, params: dict[str, Any], path: Path) -> Recipe:
    """The original recipe with the best parameters applied and the `hpo` section dropped."""
    best = apply_params(recipe, params)
    content = recipe_to_dict(best)
    content.pop("hpo", None)
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(content, f, sort_keys=False, allow_unicode=True)
    return best


def run_hpo(recipe: Recipe) -> dict:
    """Search the recipe's `hpo` space; write trials.csv and best_recipe.yaml under <output_dir>/hpo/."""
    try:
        import optuna
    except ModuleNotFoundError:
        raise MissingDependencyError("nertune hpo needs optuna: pip install 'nertune[hpo]'") from None
    hpo = recipe.hpo
    space = searched(hpo)
    if not space:
        raise RecipeError(
            f"recipe section 'hpo' searches nothing: set at least one of "
            f"{', '.join('hpo.' + hpo_field(key) for key in HPO_SPACE)}"
        )
    hpo_dir = Path(recipe.output_dir) / "hpo"
    # Trials write no checkpoints: the best parameters are retrained by `nertune train best_recipe.yaml`.
    base = recipe.model_copy(
        update={
            "output_dir": str(hpo_dir / "trials"),
            "save_strategy": "no",
            "load_best_model_at_end": False,
            "push_to_hub": False,
            "resume_from_checkpoint": None,
        }
    )
    run = setup_run(base)
    args, is_main, model_path, data = run.args, run.is_main, run.model_path, run.data

    def model_init(trial=None):
        trial_recipe = base if trial is None else apply_params(base, suggest(trial, hpo))
        return build_model(trial_recipe, model_path, data)

    def hp_space(trial) -> dict[str, Any]:
        return training_arguments_of(suggest(trial, hpo))

    trainer = build_trainer(base, args, data, model_init=model_init)
    study_name = hpo.study_name or f"nertune-{Path(recipe.output_dir).name}"
    # No RDB: an in-memory storage we keep a handle on, to read the trials back after the search.
    storage = hpo.storage if hpo.storage else optuna.storages.InMemoryStorage()
    # Workers sharing a storage must not draw the same points: each adds its process id to the seed.
    seed = hpo.seed if not hpo.storage else hpo.seed + os.getpid()
    pruner = optuna.pruners.MedianPruner() if hpo.pruning else optuna.pruners.NopPruner()
    logger.info(
        "hpo: study %r, %d trials, searching %s; storage %s",
        study_name,
        hpo.n_trials,
        space,
        hpo.storage or "in memory",
    )
    best_run = trainer.hyperparameter_search(
        hp_space=hp_space,
        compute_objective=lambda metrics: metrics["eval_f1"],
        n_trials=hpo.n_trials,
        direction="maximize",
        backend="optuna",
        timeout=hpo.timeout_s,
        study_name=study_name,
        storage=storage,
        load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=pruner,
        gc_after_trial=True,
    )
    if not is_main:  # with N processes the search and its files live on process 0
        return {}
    hpo_dir.mkdir(parents=True, exist_ok=True)
    study = optuna.load_study(study_name=study_name, storage=storage)
    best = study.best_trial  # over the whole study: with a shared storage, every worker's trials
    n_rows = write_trials_csv(study, hpo_dir / "trials.csv")
    write_best_recipe(recipe, best.params, hpo_dir / "best_recipe.yaml")
    states = {}
    for t in study.get_trials(deepcopy=False):
        states[t.state.name] = states.get(t.state.name, 0) + 1
    summary = {
        "study_name": study_name,
        "n_trials": n_rows,
        "states": states,
        "best_trial": best.number,
        "best_validation_f1": best.value,
        "best_params": best.params,
        "this_worker_best_trial": int(best_run.run_id) if best_run is not None else None,
        "trials_csv": str(hpo_dir / "trials.csv"),
        "best_recipe": str(hpo_dir / "best_recipe.yaml"),
    }
    print(
        f"hpo: {n_rows} trials ({', '.join(f'{n} {s.lower()}' for s, n in sorted(states.items()))}) "
        f"in study {study_name!r}"
    )
    print(
        f"best trial {best.number}: validation F1 {best.value:.4f} with "
        + ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in best.params.items())
    )
    print(f"trials: {hpo_dir / 'trials.csv'}\ntrain it: nertune train {hpo_dir / 'best_recipe.yaml'}")
    return summary
