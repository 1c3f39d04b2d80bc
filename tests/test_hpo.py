"""`nertune hpo`: an optuna search through Trainer.hyperparameter_search on the tiny BERT."""

from __future__ import annotations

import csv

import pytest

from nertune.recipe.schema import RecipeError, load_recipe

from .helpers import tiny_recipe

pytest.importorskip("optuna")

SPACE = [
    "hpo.n_trials=3",
    "hpo.learning_rate=[1e-3,1e-2]",
    "hpo.per_device_train_batch_size=8,16",
    "hpo.warmup_ratio=[0.0,0.2]",
    "hpo.weight_decay=[0.0,0.1]",
    "hpo.num_train_epochs=[1,2]",
]


@pytest.mark.slow
def test_three_trial_search_writes_trials_and_a_trainable_best_recipe(
    tiny_model_dir, synthetic_corpus, tmp_path, capsys
):
    from nertune.training.hpo import run_hpo

    recipe = tiny_recipe(
        tiny_model_dir,
        synthetic_corpus,
        tmp_path / "run",
        "max_steps=6",
        "eval_strategy=steps",
        "eval_steps=3",
        "hpo.pruning=true",
        *SPACE,
    )
    summary = run_hpo(recipe)
    out = tmp_path / "run" / "hpo"
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert len(rows) == 3 == summary["n_trials"]
    assert [int(r["number"]) for r in rows] == [0, 1, 2]
    assert {"state", "objective", "duration_s", "learning_rate", "per_device_train_batch_size"} <= set(rows[0])
    complete = [r for r in rows if r["state"] == "COMPLETE"]
    assert complete and all(0.0 <= float(r["objective"]) <= 1.0 for r in complete)
    assert summary["best_validation_f1"] == max(float(r["objective"]) for r in complete)
    assert "best trial" in capsys.readouterr().out
    assert not (out / "trials").exists() or not any((out / "trials").rglob("checkpoint-*"))

    best = load_recipe(out / "best_recipe.yaml")
    assert best.hpo.learning_rate is None and best.hpo.n_trials == 20  # hpo section dropped: defaults
    assert 1e-3 <= best.learning_rate <= 1e-2
    assert best.per_device_train_batch_size in (8, 16)
    assert 0.0 <= best.warmup_ratio <= 0.2 and 0.0 <= best.weight_decay <= 0.1
    assert best.num_train_epochs in (1.0, 2.0)
    assert best.learning_rate == pytest.approx(summary["best_params"]["learning_rate"])
    assert best.output_dir == str(tmp_path / "run") and best.max_steps == 6  # everything else as in the recipe


@pytest.mark.slow
def test_lora_dimensions_reach_the_model(tiny_model_dir, synthetic_corpus, tmp_path):
    from nertune.training.hpo import run_hpo

    recipe = tiny_recipe(
        tiny_model_dir,
        synthetic_corpus,
        tmp_path / "lora",
        "max_steps=2",
        "eval_strategy=no",
        "lora.enabled=true",
        "lora.target_modules=query,value",
        "hpo.n_trials=2",
        "hpo.lora_r=2,4",
        "hpo.lora_alpha=4,8",
    )
    summary = run_hpo(recipe)
    best = load_recipe(tmp_path / "lora" / "hpo" / "best_recipe.yaml")
    assert best.lora.enabled and best.lora.r in (2, 4) and best.lora.alpha in (4, 8)
    assert best.lora.r == summary["best_params"]["lora_r"]


@pytest.mark.parametrize(
    "override, message",
    [
        ("hpo.learning_rate=[1e-2,1e-3]", "low < high"),
        ("hpo.num_train_epochs=[3,1]", "low < high"),
        ("hpo.learning_rate=[1e-3]", r"\[low, high\]"),
        ("hpo.learning_rate=[0,1e-3]", "log scale"),
        ("hpo.warmup_ratio=[0.1,1.5]", r"\[0, 1\)"),
        ("hpo.lerning_rate=[1e-5,1e-3]", "did you mean 'hpo.learning_rate'"),
        ("hpo.lora_r=4,8", "lora.enabled"),
        ("hpo.per_device_train_batch_size=[]", "non-empty"),
        ("hpo.n_trials=0", "at least 1"),
    ],
)
def test_bad_space_is_a_clear_recipe_error(override, message):
    with pytest.raises(RecipeError, match=message):
        load_recipe(None, ["model_name_or_path=x", override])


def test_pruning_needs_evaluations_and_an_empty_space_is_an_error(tiny_model_dir, synthetic_corpus, tmp_path):
    from nertune.training.hpo import run_hpo

    with pytest.raises(RecipeError, match="eval_strategy"):
        load_recipe(None, ["model_name_or_path=x", "eval_strategy=no", "hpo.pruning=true"])
    with pytest.raises(RecipeError, match="searches nothing"):
        run_hpo(tiny_recipe(tiny_model_dir, synthetic_corpus, tmp_path / "e"))


def test_cli_hpo_reports_bad_recipe_in_one_line(capsys):
    from nertune.cli import main

    assert main(["hpo", "no-such-recipe.yaml"]) == 2
    assert "recipe file not found" in capsys.readouterr().err


@pytest.mark.slow
def test_workers_share_one_study_through_rdb_storage(tiny_model_dir, synthetic_corpus, tmp_path):
    """Two `nertune hpo` workers with the same hpo.storage/hpo.study_name add to one study (here one after another)."""
    from nertune.training.hpo import run_hpo

    shared = [
        f"hpo.storage=sqlite:///{tmp_path / 'hpo.db'}",
        "hpo.study_name=shared",
        "hpo.n_trials=1",
        "hpo.learning_rate=[1e-3,1e-2]",
        "max_steps=2",
        "eval_strategy=no",
    ]
    run_hpo(tiny_recipe(tiny_model_dir, synthetic_corpus, tmp_path / "w1", *shared))
    summary = run_hpo(tiny_recipe(tiny_model_dir, synthetic_corpus, tmp_path / "w2", *shared))
    assert summary["n_trials"] == 2
    rows = list(csv.DictReader((tmp_path / "w2" / "hpo" / "trials.csv").open()))
    assert [r["number"] for r in rows] == ["0", "1"] and all(r["state"] == "COMPLETE" for r in rows)


def test_the_space_is_derived_from_the_recipe_schema():
    """The searchable keys are the recipe fields marked for search; their bounds are the fields' bounds, and the
    `hpo` section has exactly one range or choice list per searchable key."""
    from nertune.recipe.hpo_space import hpo_field
    from nertune.recipe.schema import HPO_SPACE, HpoSection, all_keys

    settings = {"n_trials", "timeout_s", "pruning", "seed", "storage", "study_name"}
    assert list(HPO_SPACE) == [
        "learning_rate",
        "num_train_epochs",
        "warmup_ratio",
        "weight_decay",
        "per_device_train_batch_size",
        "lora.r",
        "lora.alpha",
    ]
    assert set(HPO_SPACE) <= set(all_keys())
    assert set(HpoSection.model_fields) - settings == {hpo_field(k) for k in HPO_SPACE}
    assert HPO_SPACE["warmup_ratio"].interval() == "[0, 1)" and HPO_SPACE["lora.r"].interval() == "[1, inf)"
    assert HPO_SPACE["learning_rate"].log and HPO_SPACE["num_train_epochs"].value_type is int
    with pytest.raises(RecipeError, match=r"'hpo.lora_alpha': every value must lie in \(0, inf\)"):
        load_recipe(None, ["model_name_or_path=x", "lora.enabled=true", "hpo.lora_alpha=0,8"])


def test_a_trial_sets_recipe_keys_and_training_arguments():
    optuna = pytest.importorskip("optuna")
    from nertune.training.hpo import apply_params, searched, suggest, training_arguments_of

    recipe = load_recipe(
        None,
        [
            "model_name_or_path=x",
            "lora.enabled=true",
            "hpo.lora_r=4",
            "hpo.lora_alpha=32",
            "hpo.num_train_epochs=[2,3]",
            "hpo.warmup_ratio=[0.1,0.2]",
        ],
    )
    assert searched(recipe.hpo) == ["num_train_epochs", "warmup_ratio", "lora_r", "lora_alpha"]
    params = suggest(optuna.create_study().ask(), recipe.hpo)
    trial_recipe = apply_params(recipe, params)
    assert trial_recipe.lora.r == 4 and trial_recipe.lora.alpha == 32 and trial_recipe.num_train_epochs in (2.0, 3.0)
    assert isinstance(trial_recipe.num_train_epochs, float) and 0.1 <= trial_recipe.warmup_ratio <= 0.2
    assert recipe.lora.r == 8  # the recipe itself is unchanged
    # LoRA values reach the model through model_init; the rest through the Trainer's arguments.
    assert training_arguments_of(params) == {
        "num_train_epochs": params["num_train_epochs"],
        "warmup_steps": params["warmup_ratio"],
    }
    with pytest.raises(RecipeError, match="unknown searched parameter"):
        apply_params(recipe, {"dropout": 0.1})
