"""LoRA on the tiny BERT: the head is trained and saved, the adapter reloads alone, merging changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from nertune.recipe.schema import RecipeError, load_recipe
from nertune.training.run import run_training

from .helpers import make_sentences, tiny_recipe, write_conll

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
LORA = ["lora.enabled=true", "lora.r=4", "lora.alpha=8", "lora.merge=true"]


def tiny_lora_recipe(model_dir, corpus, output_dir, *extra: str):
    return tiny_recipe(
        model_dir, corpus, output_dir, "learning_rate=2e-2", "num_train_epochs=4", "save_strategy=no", *LORA, *extra
    )


@pytest.fixture(scope="module")
def lora_run(tiny_model_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lora")
    corpus = {
        "train": write_conll(tmp / "train.conll", make_sentences(160, seed=1)),
        "validation": write_conll(tmp / "dev.conll", make_sentences(30, seed=2)),
        "test": write_conll(tmp / "test.conll", make_sentences(30, seed=3)),
    }
    metrics = run_training(tiny_lora_recipe(tiny_model_dir, corpus, tmp / "out"))
    return tmp / "out", metrics, corpus


def _logits(model, tokenizer, words=("bob", "works", "at", "nasa", "in", "oslo")):
    batch = tokenizer([list(words)], is_split_into_words=True, return_tensors="pt")
    with torch.inference_mode():
        return model(**batch).logits


def test_adapter_run_dir_and_metrics(lora_run):
    out, metrics, _ = lora_run
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()
    assert not (out / "config.json").exists()  # an adapter dir, not a full model
    info = json.loads((out / "nertune_adapter.json").read_text())
    assert [info["id2label"][str(i)] for i in range(len(metrics["labels"]))] == metrics["labels"]
    # The adapter's `nertune` section: what a full model keeps in config.json.
    assert (info["nertune"]["adapter"], info["nertune"]["head"], info["nertune"]["max_length"]) == (True, "linear", 32)
    merged = json.loads((out / "merged" / "config.json").read_text())["nertune"] if (out / "merged").is_dir() else None
    assert merged is None or (merged["adapter"], merged["base_model"]) == (False, info["nertune"]["base_model"])
    on_disk = json.loads((out / "metrics.json").read_text())
    assert 0 < on_disk["trainable_params"] and 0 < on_disk["trainable_percent"] < 100
    assert on_disk["adapter_size_bytes"] == (out / "adapter_model.safetensors").stat().st_size
    assert on_disk["world_size"] == 1
    assert metrics["test_f1"] > 0.5  # LoRA learns the synthetic corpus (a frozen random encoder would not)


def test_classifier_head_is_trained_and_saved_with_the_adapter(lora_run, tiny_model_dir):
    from transformers import set_seed

    from nertune.model.loading import load_model_for_training

    out, metrics, _ = lora_run
    saved = load_file(out / "adapter_model.safetensors")
    assert all("lora_" in k or "classifier" in k for k in saved), sorted(saved)  # no frozen encoder weights
    head = {k.rsplit(".", 1)[-1]: v for k, v in saved.items() if "classifier" in k}
    assert set(head) == {"weight", "bias"}
    set_seed(42)  # the recipe's seed: reproduces the freshly initialised head the run started from
    initial = load_model_for_training(str(tiny_model_dir), metrics["labels"], keep_head=False).classifier
    assert head["weight"].shape == initial.weight.shape
    assert not torch.allclose(head["weight"], initial.weight.detach())
    assert not torch.allclose(head["bias"], initial.bias.detach())


def test_adapter_reloads_on_a_fresh_base_and_merges_to_a_plain_model(lora_run):
    from transformers import AutoModelForTokenClassification, pipeline

    from nertune.model.loading import load_for_inference, load_tokenizer

    out, metrics, _ = lora_run
    tokenizer = load_tokenizer(str(out))
    first, second = load_for_inference(str(out)), load_for_inference(str(out))  # no num_labels needed
    assert first.config.id2label == dict(enumerate(metrics["labels"]))
    adapter_logits = _logits(first, tokenizer)
    assert torch.equal(adapter_logits, _logits(second, tokenizer))

    merged_dir = out / "merged"
    assert metrics["merged_model_dir"] == str(merged_dir) and (merged_dir / "config.json").is_file()
    merged = AutoModelForTokenClassification.from_pretrained(merged_dir).eval()
    assert not any("lora" in name for name, _ in merged.named_parameters())
    assert (_logits(merged, tokenizer) - adapter_logits).abs().max().item() < 1e-4
    ner = pipeline("token-classification", model=str(merged_dir), aggregation_strategy="first", device=-1)
    assert ner.model.config.id2label == dict(enumerate(metrics["labels"]))
    assert {e["entity_group"] for e in ner("bob works at nasa in oslo .")} <= {"PER", "ORG", "LOC"}


def test_evaluate_an_adapter_dir_gives_the_run_scores(lora_run):
    from nertune.evaluation.run import run_evaluation

    out, metrics, _ = lora_run
    scores = run_evaluation(out)  # reloads the adapter onto a fresh base: same predictions as after training
    assert scores["f1"] == pytest.approx(metrics["test_f1"])
    assert scores["n_words_in_input"] == scores["n_words_predicted"]


def test_target_modules_defaults_and_unknown_names(tiny_model_dir):
    from transformers import AutoModelForTokenClassification, DebertaV2Config

    from nertune.model.lora import resolve_target_modules

    bert = AutoModelForTokenClassification.from_pretrained(tiny_model_dir, num_labels=3)
    assert resolve_target_modules(bert, None) == ["query", "value"]
    assert resolve_target_modules(bert, ["query", "key", "value"]) == ["query", "key", "value"]
    with pytest.raises(ValueError, match=r"\['qkv'\] not in this bert model.*'dense'.*'query'"):
        resolve_target_modules(bert, ["qkv"])
    deberta = AutoModelForTokenClassification.from_config(
        DebertaV2Config(
            vocab_size=50,
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            num_labels=3,
        )
    )
    assert resolve_target_modules(deberta, None) == ["query_proj", "value_proj"]


def test_unknown_target_module_fails_before_training(tiny_model_dir, synthetic_corpus, tmp_path):
    with pytest.raises(ValueError, match="linear layers are"):
        run_training(tiny_lora_recipe(tiny_model_dir, synthetic_corpus, tmp_path / "o", "lora.target_modules=[q_proj]"))
    assert not (tmp_path / "o" / "checkpoints").exists()


@pytest.mark.parametrize("override", ["lora.r=0", "lora.dropout=1.0", "lora.alpha=0", "lora.target_modules=[]"])
def test_lora_recipe_values_are_checked(override, tiny_model_dir):
    with pytest.raises(RecipeError, match="lora."):
        load_recipe(None, [f"model_name_or_path={tiny_model_dir}", override])


def test_quickstart_lora_recipe_matches_the_quickstart_model_and_data():
    quickstart, lora = load_recipe(RECIPES / "quickstart.yaml"), load_recipe(RECIPES / "quickstart-lora.yaml")
    assert lora.lora.enabled and lora.lora.merge and lora.output_dir == "runs/quickstart-lora"
    assert (lora.model_name_or_path, lora.data) == (quickstart.model_name_or_path, quickstart.data)


def test_predictor_on_adapter_dir_equals_merged_model(lora_run):
    from nertune.inference.predictor import NerPredictor

    out, _, _ = lora_run
    sentences = [["bob", "works", "at", "nasa", "in", "oslo", "."], ["mary", "lives", "in", "rome"]]
    from_adapter = NerPredictor.from_pretrained(out, precision="fp32").predict_words(sentences)
    from_merged = NerPredictor.from_pretrained(out / "merged", precision="fp32").predict_words(sentences)
    assert [[t for t, _ in s] for s in from_adapter] == [[t for t, _ in s] for s in from_merged]
    assert all(abs(a[1] - b[1]) < 1e-4 for sa, sb in zip(from_adapter, from_merged) for a, b in zip(sa, sb))


def test_predicting_an_adapter_reads_each_file_once(lora_run, tiny_model_dir, tmp_path):
    from nertune.inference.files import run_prediction

    from .helpers import open_counter

    out, _, _ = lora_run
    source = tmp_path / "in.txt"
    source.write_text("bob works at nasa in oslo .\n", encoding="utf-8")
    with open_counter().counting(out, tiny_model_dir) as counts:
        assert run_prediction(out, source, tmp_path / "out.jsonl", device="cpu", precision="fp32") == 1
    opened = {f"{path.parent.name}/{path.name}": n for path, n in counts.items()}
    assert opened.get(f"{out.name}/nertune_adapter.json") == 1, opened  # the section, read once
    assert opened.get(f"{tiny_model_dir.name}/config.json", 0) <= 2, opened  # the base's config
    assert f"{out.name}/recipe.yaml" not in opened, opened
