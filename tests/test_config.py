"""Recipes: YAML + key=value overrides, type checks, typo suggestions, saving the resolved recipe."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from nertune.recipe.schema import RecipeError, all_keys, load_recipe, save_recipe

RECIPES = Path(__file__).resolve().parent.parent / "recipes"


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_yaml_values_and_overrides_including_dotted_keys(tmp_path):
    path = write(tmp_path, "model_name_or_path: m\nlearning_rate: 2e-4\ndata:\n  train_file: a.conll\n")
    recipe = load_recipe(
        path,
        [
            "num_train_epochs=5",
            "data.validation_file=b.conll",
            "precision=fp32",
            "data.label_names=[O, B-PER]",
            "early_stopping_patience=none",
        ],
    )
    assert recipe.learning_rate == pytest.approx(2e-4)  # PyYAML reads 2e-4 as a string; we do not
    assert recipe.num_train_epochs == 5.0
    assert recipe.data.train_file == "a.conll" and recipe.data.validation_file == "b.conll"
    assert recipe.data.label_names == ["O", "B-PER"]
    assert recipe.early_stopping_patience is None
    assert recipe.output_dir == str(Path("runs") / "r")  # default: runs/<recipe stem>


@pytest.mark.parametrize(
    "override, message",
    [
        ("learnig_rate=1", "did you mean 'learning_rate'"),
        ("data.trian_file=x", "did you mean 'data.train_file'"),
        ("max_length=abc", "'max_length': expected an integer"),
        ("max_length=12.5", "'max_length': expected an integer"),
        ("group_by_length=maybe", "expected true or false"),
        ("precision=fp8", "must be one of"),
        ("data=3", "is a section"),
        ("no_equals_sign", "not of the form key=value"),
    ],
)
def test_bad_overrides_name_the_key(tmp_path, override, message):
    path = write(tmp_path, "model_name_or_path: m\n")
    with pytest.raises(RecipeError, match=message):
        load_recipe(path, [override])


def test_unknown_key_in_file_names_file_and_key(tmp_path):
    path = write(tmp_path, "model_name_or_path: m\ndata:\n  tag_shceme: IOB1\n")
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    assert str(path) in str(info.value) and "data.tag_shceme" in str(info.value)
    assert "data.tag_scheme" in str(info.value)


def test_missing_model_and_bad_window_settings(tmp_path):
    with pytest.raises(RecipeError, match="model_name_or_path"):
        load_recipe(write(tmp_path, "learning_rate: 1.0e-3\n"))
    with pytest.raises(RecipeError, match="window_overlap"):
        load_recipe(write(tmp_path, "model_name_or_path: m\n"), ["max_length=32", "window_overlap=16"])
    with pytest.raises(RecipeError, match="not found"):
        load_recipe(tmp_path / "missing.yaml")


def test_resolved_recipe_round_trips(tmp_path):
    recipe = load_recipe(RECIPES / "quickstart.yaml", ["seed=7", "data.split_seed=3"])
    save_recipe(recipe, tmp_path / "config.yaml")
    again = load_recipe(tmp_path / "config.yaml")
    assert again == recipe


@pytest.mark.parametrize("recipe_file", sorted(RECIPES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_recipe_loads_and_pins_every_hyperparameter(recipe_file):
    content = yaml.safe_load(recipe_file.read_text())
    load_recipe(recipe_file)
    flat = set()
    for key, value in content.items():  # sections (data:, lora:) become dotted keys
        flat |= {f"{key}.{sub}" for sub in value} if isinstance(value, dict) else {key}
    for key in (
        "model_name_or_path",
        "output_dir",
        "max_length",
        "num_train_epochs",
        "learning_rate",
        "per_device_train_batch_size",
        "seed",
        "precision",
        "eval_strategy",
        "save_strategy",
        "warmup_ratio",
        "weight_decay",
        "data.tag_scheme",
    ):
        assert key in flat, f"{recipe_file.name} does not pin {key}"
    assert set(flat) <= set(all_keys())


def test_overrides_as_a_mapping_of_python_values(tmp_path):
    """The Python API passes recipe keys as values, not strings; they are checked like the command line's."""
    from nertune.recipe.schema import apply_overrides

    recipe = load_recipe(
        None,
        {
            "model_name_or_path": "x",
            "data.train_file": tmp_path / "t.conll",
            "learning_rate": 1e-4,
            "lora.target_modules": ["query", "value"],
            "data.label_map": {"PERSON": "PER"},
        },
    )
    assert recipe.data.train_file == str(tmp_path / "t.conll") and recipe.learning_rate == 1e-4
    assert recipe.lora.target_modules == ["query", "value"] and recipe.data.label_map == {"PERSON": "PER"}
    changed = apply_overrides(recipe, {"max_length": 96})
    assert changed.max_length == 96 and recipe.max_length == 128
    with pytest.raises(RecipeError, match="'max_length' must be at least 8"):
        apply_overrides(recipe, {"max_length": 4})
    with pytest.raises(RecipeError, match="did you mean 'learning_rate'"):
        apply_overrides(recipe, {"learnig_rate": 1e-3})


def test_the_key_reference_lists_every_schema_field_with_its_default_and_description():
    from nertune.recipe import recipe_key_reference

    reference = recipe_key_reference()
    rows = {line.split("|")[1].strip().strip("`"): line for line in reference.splitlines()[2:]}
    assert set(rows) == set(all_keys())
    assert "`linear` \\| `crf`" in rows["head"] and "`128`" in rows["max_length"] and "(>= 8)" in rows["max_length"]
    assert "searchable by `nertune hpo`" in rows["learning_rate"]
    assert all(line.count("|") - line.count("\\|") == 5 and line.split("|")[-2].strip() for line in rows.values())


@pytest.mark.parametrize(
    "override, key, value",
    [
        ("save_strategy=no", "save_strategy", "no"),  # YAML's `no` is false; the field is a choice of words
        ("data.comment_prefix=#", "comment_prefix", "#"),  # a comment to YAML
        ("report_to=none", "report_to", "none"),  # text where None is not allowed ...
        ("hub_model_id=none", "hub_model_id", None),  # ... None where it is
        ("data.dataset_config=2003", "dataset_config", "2003"),
        ("lora.target_modules=query,value", "target_modules", ["query", "value"]),
    ],
)
def test_command_line_values_are_read_for_their_field(override, key, value):
    recipe = load_recipe(None, ["model_name_or_path=m", override])
    section = recipe.data if override.startswith("data.") else recipe.lora if override.startswith("lora.") else recipe
    assert getattr(section, key) == value


def test_cross_field_errors_name_the_file(tmp_path):
    path = write(tmp_path, "model_name_or_path: m\nmax_length: 32\nwindow_overlap: 16\n")
    with pytest.raises(RecipeError, match=rf"^{path}: recipe key 'window_overlap' must be in \[0, max_length/2\)"):
        load_recipe(path)
