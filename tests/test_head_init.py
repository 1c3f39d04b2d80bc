"""How a fresh head starts (`head_bias_init`) and its own learning rate (`classifier_learning_rate`), on the
real data preparation and Trainer of the tiny BERT."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from nertune.recipe.schema import RecipeError, load_recipe

from .helpers import make_sentences, tiny_recipe, write_conll


def _model_and_data(recipe):
    from transformers import set_seed

    from nertune.training.model_setup import build_model
    from nertune.training.run import setup_run

    run = setup_run(recipe)
    set_seed(recipe.seed)  # as run_training does: the same fresh weights from the same recipe
    return build_model(recipe, run.model_path, run.data), run


def _log_prior(tags: list[list[str]], labels: list[str]) -> torch.Tensor:
    """log(count + 1) of every label over the words' tags, centred: counted from the split, not the features."""
    counts = Counter(tag for sentence in tags for tag in sentence)
    log_counts = torch.log(torch.tensor([counts[label] + 1.0 for label in labels], dtype=torch.float64))
    return log_counts - log_counts.mean()


@pytest.mark.parametrize("head", ["linear", "crf"])
def test_a_fresh_head_starts_at_the_training_label_prior(tiny_model_dir, synthetic_corpus, tmp_path, head):
    recipe = tiny_recipe(tiny_model_dir, synthetic_corpus, tmp_path / "run", f"head={head}")
    model, run = _model_and_data(recipe)
    bias = model.classifier.bias.detach().double()
    # First sub-tokens carry the labels (label_all_subtokens=false): one per word of the training split.
    expected = _log_prior(run.data.splits["train"]["ner_tags"], run.data.labels)
    assert torch.allclose(bias, expected, atol=1e-6), (bias, expected)
    assert run.data.labels[int(bias.argmax())] == "O"  # so the untrained model already predicts mostly O
    probabilities = bias.softmax(0)
    assert probabilities[run.data.labels.index("O")] > 0.5

    zero, _ = _model_and_data(recipe.model_copy(update={"head_bias_init": "zero"}))
    assert torch.count_nonzero(zero.classifier.bias) == 0  # transformers' own initialisation
    assert torch.equal(zero.classifier.weight, model.classifier.weight)  # only the bias differs


def test_the_prior_counts_every_labelled_sub_token(tiny_model_dir, synthetic_corpus, tmp_path):
    """label_all_subtokens=true trains on continuation sub-tokens too: the prior counts what the loss sees."""
    # "marys" is two sub-tokens (mary ##s) for the tiny tokenizer.
    sentences = [*make_sentences(60, seed=1), *[(["marys", "paris", "visited"], ["B-PER", "B-LOC", "O"])] * 20]
    corpus = {**synthetic_corpus, "train": write_conll(tmp_path / "train.conll", sentences)}
    recipe = tiny_recipe(tiny_model_dir, corpus, tmp_path / "run", "label_all_subtokens=true")
    model, run = _model_and_data(recipe)
    ids = Counter(i for row in run.data.train_features["labels"] for i in row if i != -100)
    words = sum(map(len, run.data.splits["train"]["ner_tags"]))
    assert sum(ids.values()) > words  # the corpus has words of several sub-tokens
    log_counts = torch.log(torch.tensor([ids[i] + 1.0 for i in range(len(run.data.labels))], dtype=torch.float64))
    assert torch.allclose(model.classifier.bias.detach().double(), log_counts - log_counts.mean(), atol=1e-6)


def test_a_fresh_span_scorer_starts_at_the_prior_of_the_candidate_spans(tiny_model_dir, synthetic_corpus, tmp_path):
    """The span head's classes are those of every candidate span of 1..span_max_width words: "no entity" for
    almost all of them, which its scorer's bias then starts at."""
    from nertune.schemes import entity_types, tags_to_spans

    width = 3
    recipe = tiny_recipe(tiny_model_dir, synthetic_corpus, tmp_path / "run", "head=span", f"span_max_width={width}")
    model, run = _model_and_data(recipe)
    train = run.data.splits["train"]
    assert len(run.data.train_features) == len(train)  # short sentences: one window each, nothing cut
    types = entity_types(run.data.labels)
    counts = Counter()
    for tags in train["ner_tags"]:  # counted from the tags, not from the packed labels the head reads
        gold = {(start, end): types.index(t) + 1 for t, start, end in tags_to_spans(tags, run.data.scheme)}
        n = len(tags)
        counts.update(gold.get((w, w + k), 0) for w in range(n) for k in range(1, width + 1) if w + k <= n)
    assert counts[0] > sum(counts[c] for c in range(1, len(types) + 1))  # most candidates are no entity
    log_counts = torch.log(torch.tensor([counts[c] + 1.0 for c in range(len(types) + 1)], dtype=torch.float64))
    bias = model.span.classifier.bias.detach().double()
    assert torch.allclose(bias, log_counts - log_counts.mean(), atol=1e-6), (bias, log_counts - log_counts.mean())
    assert int(bias.argmax()) == 0  # the untrained scorer says "no entity"

    zero, _ = _model_and_data(recipe.model_copy(update={"head_bias_init": "zero"}))
    assert torch.count_nonzero(zero.span.classifier.bias) == 0
    assert torch.equal(zero.span.classifier.weight, model.span.classifier.weight)


def test_a_continued_model_keeps_its_trained_head(trained_model_dir, synthetic_corpus, tmp_path):
    from safetensors.torch import load_file

    recipe = tiny_recipe(trained_model_dir, synthetic_corpus, tmp_path / "again")
    model, run = _model_and_data(recipe)
    assert run.data.keep_head
    saved = load_file(str(trained_model_dir / "model.safetensors"))["classifier.bias"]
    assert torch.equal(model.classifier.bias.detach(), saved)


@pytest.mark.slow
@pytest.mark.parametrize("head", ["linear", "crf"])
def test_classifier_learning_rate_trains_the_output_layer_at_its_own_rate(
    tiny_model_dir, synthetic_corpus, tmp_path, head
):
    from nertune.training.run import build_trainer

    steps, encoder_rate, classifier_rate = 4, 1e-5, 1e-2
    recipe = tiny_recipe(
        tiny_model_dir, synthetic_corpus, tmp_path / "run", f"head={head}", f"max_steps={steps}",
        f"learning_rate={encoder_rate}", f"classifier_learning_rate={classifier_rate}", "warmup_ratio=0",
        "lr_scheduler_type=constant", "eval_strategy=no", "save_strategy=no", "load_best_model_at_end=false",
    )  # fmt: skip
    model, run = _model_and_data(recipe)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    trainer = build_trainer(recipe, run.args, run.data, model=model)
    trainer.train()

    groups = [g for g in trainer.optimizer.param_groups if g.get("nertune_head")]
    classifier_ids = {id(p) for p in model.classifier.parameters()}
    (own,) = [g for g in groups if {id(p) for p in g["params"]} == classifier_ids]
    assert own["lr"] == classifier_rate and own["weight_decay"] == 0.0
    others = [p for g in trainer.optimizer.param_groups if g is not own for p in g["params"]]
    assert not classifier_ids & {id(p) for p in others}  # in no other group
    # Adam moves a weight by about its learning rate a step: the output layer moved far more than the encoder
    # could have at its rate.
    moved = {name: (p.detach() - before[name]).abs().max().item() for name, p in model.named_parameters()}
    assert moved["classifier.weight"] > 10 * steps * encoder_rate, moved
    encoder = max(v for name, v in moved.items() if name.startswith("bert."))
    assert encoder <= 1.5 * steps * encoder_rate, moved


@pytest.mark.slow
def test_under_lora_the_classifier_copy_peft_trains_gets_the_rate(tiny_model_dir, synthetic_corpus, tmp_path):
    from nertune.training.run import build_trainer

    recipe = tiny_recipe(
        tiny_model_dir, synthetic_corpus, tmp_path / "run", "lora.enabled=true", "lora.r=4", "max_steps=2",
        "classifier_learning_rate=1e-2", "eval_strategy=no", "save_strategy=no", "load_best_model_at_end=false",
    )  # fmt: skip
    model, run = _model_and_data(recipe)
    trainer = build_trainer(recipe, run.args, run.data, model=model)
    trainer.train()
    (own,) = [g for g in trainer.optimizer.param_groups if g.get("nertune_head")]
    names = {id(p): name for name, p in model.named_parameters()}
    own_names = sorted(names[id(p)] for p in own["params"])
    assert own["initial_lr"] == 1e-2 and [name.rsplit(".", 1)[-1] for name in own_names] == ["bias", "weight"]
    assert all("classifier.modules_to_save" in name for name in own_names), own_names
    others = {id(p) for g in trainer.optimizer.param_groups if g is not own for p in g["params"]}
    assert others and not others & {id(p) for p in own["params"]}


def test_classifier_learning_rate_is_refused_with_the_span_head():
    with pytest.raises(RecipeError, match="classifier_learning_rate=null"):
        load_recipe(None, ["model_name_or_path=x", "classifier_learning_rate=1e-3", "head=span"])
    with pytest.raises(RecipeError, match="head_bias_init"):
        load_recipe(None, ["model_name_or_path=x", "head_bias_init=uniform"])
