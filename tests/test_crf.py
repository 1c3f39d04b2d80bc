"""The CRF head: Viterbi and the NLL against brute force, constrained decoding, and a real head=crf run."""

from __future__ import annotations

import itertools
import json
import random

import pytest
import torch

from nertune.heads.crf import CrfHead, LinearChainCRF, allowed_transitions, pack_labelled, viterbi_words
from nertune.schemes import build_label_list, is_valid_sequence

IOB2_LABELS = build_label_list([["B-PER", "B-LOC"]], "IOB2")  # O, B-LOC, I-LOC, B-PER, I-PER
BIOES_LABELS = build_label_list([["S-PER", "S-LOC"]], "BIOES")


def _random_crf(labels, scheme, seed):
    torch.manual_seed(seed)
    crf = LinearChainCRF(labels, scheme)
    with torch.no_grad():
        for p in crf.parameters():
            p.normal_()
    return crf


def _path_score(crf, emissions, path, constrained=False):
    start, transitions, end = crf._scores(constrained)
    score = start[path[0]] + emissions[0, path[0]] + end[path[-1]]
    for t in range(1, len(path)):
        score = score + transitions[path[t - 1], path[t]] + emissions[t, path[t]]
    return float(score.detach())


@pytest.mark.parametrize("seed", range(12))
def test_viterbi_matches_brute_force(seed):
    rng = random.Random(seed)
    labels = ["O", "B-X", "I-X"]
    crf = _random_crf(labels, "IOB2", seed)
    lengths = [rng.randint(1, 5) for _ in range(3)]
    emissions = torch.randn(3, max(lengths), 3)
    mask = torch.arange(max(lengths))[None] < torch.tensor(lengths)[:, None]
    for constrained in (False, True):
        paths = crf.decode(emissions, mask, constrained=constrained)
        for b, n in enumerate(lengths):
            candidates = list(itertools.product(range(3), repeat=n))
            if constrained:
                candidates = [c for c in candidates if is_valid_sequence([labels[i] for i in c], "IOB2")]
            best = max(candidates, key=lambda c: _path_score(crf, emissions[b], c, constrained))
            assert len(paths[b]) == n
            assert _path_score(crf, emissions[b], paths[b], constrained) == pytest.approx(
                _path_score(crf, emissions[b], best, constrained), abs=1e-4
            )
            if constrained:
                assert is_valid_sequence([labels[i] for i in paths[b]], "IOB2")


@pytest.mark.parametrize("scheme,labels", [("IOB2", IOB2_LABELS), ("BIOES", BIOES_LABELS)])
def test_constrained_viterbi_is_the_best_valid_sequence(scheme, labels):
    """Exhaustive on short sequences: the mask encodes exactly `is_valid_sequence`."""
    crf = _random_crf(labels, scheme, 0)
    for n in (1, 2, 3):
        valid = [
            c
            for c in itertools.product(range(len(labels)), repeat=n)
            if is_valid_sequence([labels[i] for i in c], scheme)
        ]
        for _ in range(5):
            emissions = torch.randn(1, n, len(labels)) * 3
            (path,) = crf.decode(emissions)
            best = max(valid, key=lambda c: _path_score(crf, emissions[0], c))
            assert _path_score(crf, emissions[0], path) == pytest.approx(_path_score(crf, emissions[0], best), abs=1e-4)


@pytest.mark.parametrize(
    "scheme,labels",
    [("IOB2", IOB2_LABELS), ("BIOES", BIOES_LABELS), ("BILOU", build_label_list([["U-PER", "U-LOC"]], "BILOU"))],
)
def test_constrained_decoding_never_emits_an_invalid_sequence(scheme, labels):
    crf = _random_crf(labels, scheme, 1)
    with torch.no_grad():  # transitions that favour invalid moves: the mask must still win
        allowed_start, allowed, _ = (torch.tensor(m) for m in allowed_transitions(labels, scheme))
        crf.transitions.add_(5 * (~allowed).float())
        crf.start_transitions.add_(5 * (~allowed_start).float())
    lengths = torch.randint(1, 12, (200,))
    emissions = torch.randn(200, 11, len(labels)) * 4
    mask = torch.arange(11)[None] < lengths[:, None]
    for path, n in zip(crf.decode(emissions, mask), lengths.tolist()):
        assert len(path) == n
        assert is_valid_sequence([labels[i] for i in path], scheme), [labels[i] for i in path]
    unconstrained = crf.decode(emissions, mask, constrained=False)
    assert not all(is_valid_sequence([labels[i] for i in p], scheme) for p in unconstrained)  # the test bites


def test_allowed_transitions_iob2_grammar():
    start, transition, end = allowed_transitions(IOB2_LABELS, "IOB2")
    index = {label: i for i, label in enumerate(IOB2_LABELS)}
    assert not start[index["I-PER"]] and start[index["B-PER"]] and start[index["O"]]
    assert not transition[index["O"]][index["I-PER"]]
    assert not transition[index["B-LOC"]][index["I-PER"]] and not transition[index["I-LOC"]][index["I-PER"]]
    assert transition[index["B-PER"]][index["I-PER"]] and transition[index["I-PER"]][index["I-PER"]]
    assert all(end)


@pytest.mark.parametrize("seed", range(8))
def test_nll_matches_brute_force_log_partition(seed):
    rng = random.Random(seed)
    crf = _random_crf(["O", "B-X", "I-X"], "IOB2", seed)
    # Sub-token rows: -100 marks positions (specials, later sub-tokens) the CRF skips.
    labels = torch.full((2, 7), -100)
    lengths = []
    for b in range(2):
        positions = sorted(rng.sample(range(7), rng.randint(1, 5)))
        lengths.append(len(positions))
        for p in positions:
            labels[b, p] = rng.randrange(3)
    emissions = torch.randn(2, 7, 3, requires_grad=True)
    nll = crf.neg_log_likelihood(emissions, labels)
    expected = 0.0
    for b in range(2):
        keep = labels[b] != -100
        em, gold = emissions[b][keep].detach(), labels[b][keep].tolist()
        scores = torch.tensor([_path_score(crf, em, c) for c in itertools.product(range(3), repeat=len(gold))])
        expected += float(torch.logsumexp(scores, 0)) - _path_score(crf, em, gold)
    assert float(nll.detach()) == pytest.approx(expected, abs=1e-4)
    nll.backward()
    assert crf.transitions.grad is not None and emissions.grad.abs().sum() > 0


def test_pack_labelled_drops_unlabelled_rows():
    labels = torch.tensor([[-100, 1, -100, 2], [-100, -100, -100, -100]])
    emissions, tags, mask = pack_labelled(torch.randn(2, 4, 3), labels)
    assert emissions.shape == (1, 2, 3) and tags.tolist() == [[1, 2]] and mask.tolist() == [[True, True]]
    assert (
        float(LinearChainCRF(["O", "B-X", "I-X"]).neg_log_likelihood(torch.randn(1, 3, 3), torch.full((1, 3), -100)))
        == 0.0
    )


def test_viterbi_words_handles_empty_and_uneven_sentences():
    crf = _random_crf(IOB2_LABELS, "IOB2", 3)
    sentences = [[torch.randn(5) for _ in range(n)] for n in (3, 0, 7, 1)]
    paths = viterbi_words(crf, sentences, batch_size=2)
    assert [len(p) for p in paths] == [3, 0, 7, 1]
    for sentence, path in zip(sentences, paths):
        if sentence:
            assert path == crf.decode(torch.stack(sentence)[None])[0]


def test_recipe_head_key():
    from nertune.recipe.schema import RecipeError, load_recipe

    assert load_recipe(None, ["model_name_or_path=x"]).head == "linear"
    assert load_recipe(None, ["model_name_or_path=x", "head=crf"]).head == "crf"
    with pytest.raises(RecipeError, match="head"):
        load_recipe(None, ["model_name_or_path=x", "head=softmax"])
    with pytest.raises(RecipeError, match="lora"):
        load_recipe(None, ["model_name_or_path=x", "head=crf", "lora.enabled=true"])


# --------------------------------------------------------------------------------------------
# A real Trainer run with head=crf


@pytest.fixture(scope="module")
def crf_run(tiny_model_dir, tmp_path_factory):
    from nertune.training.run import run_training

    from .helpers import make_sentences, tiny_recipe, write_conll

    tmp = tmp_path_factory.mktemp("crf-run")
    test_sentences = make_sentences(40, seed=3)
    long_sentence = make_sentences(25, seed=4)  # 150 words: windowed at max_length=32, decoded in one piece
    test_sentences.append(([w for t, _ in long_sentence for w in t], [g for _, tags in long_sentence for g in tags]))
    corpus = {
        "train": write_conll(tmp / "train.conll", make_sentences(240, seed=1)),
        "validation": write_conll(tmp / "dev.conll", make_sentences(40, seed=2)),
        "test": write_conll(tmp / "test.conll", test_sentences),
    }
    recipe = tiny_recipe(
        tiny_model_dir, corpus, tmp / "out", "head=crf", "num_train_epochs=4", "crf_learning_rate=0.02"
    )
    metrics = run_training(recipe)
    return tmp / "out", metrics, test_sentences


def test_crf_training_learns_saves_and_reloads(crf_run):
    from nertune.inference.predictor import NerPredictor
    from nertune.model.loading import load_for_inference

    out, metrics, test_sentences = crf_run
    assert metrics["test_f1"] > 0.8 and metrics["validation_f1"] > 0.8, metrics
    assert metrics["n_test_words_in_input"] == metrics["n_test_words_predicted"]
    config = json.loads((out / "config.json").read_text())
    assert config["nertune"]["head"] == "crf" and config["nertune"]["scheme"] == "IOB2"
    assert config["architectures"] == ["BertForTokenClassificationWithCrf"]
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    losses = [h["loss"] for h in history if "loss" in h]
    assert losses[-1] < losses[0] * 0.5, losses

    model = load_for_inference(str(out))
    assert model.crf.transitions.abs().sum() > 0  # the learned scores came back, not a fresh CRF
    predictor = NerPredictor.from_pretrained(out, device="cpu", precision="fp32")
    assert predictor.head.crf is predictor.model.crf
    tokens = [t for t, _ in test_sentences]
    predicted = [[tag for tag, _ in s] for s in predictor.predict_words(tokens)]
    # Identical to the training run's own test predictions (Trainer + predict_split on the same weights).
    written = [
        line.split("\t")[2]
        for line in (out / "test_predictions.conll").read_text().splitlines()
        if line.strip() and not line.startswith("-DOCSTART-")
    ]
    assert [tag for s in predicted for tag in s] == written
    for sentence in predicted:
        assert is_valid_sequence(sentence, "IOB2")
    entities = predictor.predict_texts(["mary lives in paris ."])[0]["entities"]
    assert {(e["type"], e["text"]) for e in entities} == {("PER", "mary"), ("LOC", "paris")}
    assert all(0 < e["score"] <= 1 for e in entities)
    for precision in ("bf16", "int8"):  # the CRF survives dtype casts and dynamic quantization
        quantized = NerPredictor.from_pretrained(out, device="cpu", precision=precision)
        assert quantized.head.crf is quantized.model.crf
        tagged = quantized.predict_words(tokens)
        assert all(is_valid_sequence([tag for tag, _ in s], "IOB2") for s in tagged)


def test_crf_run_evaluates_like_training(crf_run):
    from nertune.evaluation.run import run_evaluation

    out, metrics, _ = crf_run
    scores = run_evaluation(out, bootstrap=0)
    assert scores["f1"] == pytest.approx(metrics["test_f1"])


def test_pipeline_loads_a_crf_dir_as_a_linear_fallback(crf_run):
    from transformers import pipeline

    out, _, _ = crf_run
    ner = pipeline("token-classification", model=str(out), aggregation_strategy="first", device=-1)
    entities = ner("mary lives in paris .")
    assert {(e["entity_group"], e["word"]) for e in entities} == {("PER", "mary"), ("LOC", "paris")}


def test_crf_learning_rate_gets_its_own_param_group(crf_run, tmp_path):
    from transformers import TrainingArguments

    from nertune.model.loading import load_for_inference
    from nertune.training.trainer import NerTrainer

    out, _, _ = crf_run
    model = load_for_inference(str(out)).train()
    trainer = NerTrainer(
        model=model,
        args=TrainingArguments(output_dir=str(tmp_path), learning_rate=1e-4, report_to="none", use_cpu=True),
        head=CrfHead("IOB2", learning_rate=0.01),
    )
    optimizer = trainer.create_optimizer()
    crf_ids = {id(p) for p in model.crf.parameters()}
    (crf_group,) = [g for g in optimizer.param_groups if g.get("nertune_head")]
    assert crf_group["lr"] == 0.01 and {id(p) for p in crf_group["params"]} == crf_ids
    others = [p for g in optimizer.param_groups if not g.get("nertune_head") for p in g["params"]]
    assert not crf_ids & {id(p) for p in others} and len(others) == len(list(model.parameters())) - 3
    # Without its own learning rate the CRF trains with the encoder's; the head read from config.json has none.
    default = NerTrainer(model=model, args=TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True))
    assert isinstance(default.head, CrfHead) and default.head.learning_rate is None
    assert not any(g.get("nertune_head") for g in default.create_optimizer().param_groups)


def test_a_crf_dir_continues_as_either_head(crf_run):
    from nertune.model.loading import load_for_inference, load_model_for_training
    from nertune.model.settings import ModelSettings

    out, metrics, _ = crf_run
    model = load_model_for_training(str(out), metrics["labels"], keep_head=True, settings=ModelSettings())
    assert model.config.nertune["head"] == "linear" and not hasattr(model, "crf")  # a plain HF model
    assert type(model).__name__ == "BertForTokenClassification"
    crf = ModelSettings(head="crf")
    model = load_model_for_training(str(out), metrics["labels"], keep_head=True, settings=crf)
    assert torch.equal(model.crf.transitions, load_for_inference(str(out)).crf.transitions)  # the learned scores
    fresh = load_model_for_training(str(out), metrics["labels"], keep_head=False, settings=crf)
    assert fresh.crf.transitions.abs().sum() == 0  # a new CRF starts at 0


def test_a_crf_config_without_crf_weights_is_an_error(crf_run, tmp_path):
    from transformers import AutoModelForTokenClassification

    from nertune.errors import ModelError
    from nertune.model.loading import load_for_inference

    out, _, _ = crf_run
    plain = AutoModelForTokenClassification.from_pretrained(out)  # the linear fallback: no crf.* tensors
    plain.save_pretrained(tmp_path)
    with pytest.raises(ModelError, match="head=crf but the weights lack"):
        load_for_inference(str(tmp_path))


def test_crf_under_two_processes_reproduces_one(ddp_setup):
    """DDP: the CRF scores are used in compute_loss, outside the wrapped forward; they must still be
    averaged across ranks, and the losses and predictions match one process."""
    from nertune.recipe.schema import load_recipe
    from nertune.training.run import run_training

    from .helpers import ddp_launch, ddp_overrides, log_history

    tmp, model_dir, corpus = ddp_setup
    extra = ("head=crf", "crf_learning_rate=0.02")
    single = run_training(load_recipe(None, ddp_overrides(model_dir, corpus, tmp / "crf-one", *extra)))
    ddp_launch(tmp, ddp_overrides(model_dir, corpus, tmp / "crf-two", *extra))
    double = json.loads((tmp / "crf-two" / "metrics.json").read_text())
    assert double["world_size"] == 2
    one, two = log_history(tmp / "crf-one"), log_history(tmp / "crf-two")
    for key in ("loss", "eval_loss", "eval_f1"):
        a, b = [h[key] for h in one if key in h], [h[key] for h in two if key in h]
        assert len(a) == len(b) > 0 and a == pytest.approx(b, rel=1e-4, abs=1e-6), key
    rank0, rank1 = torch.load(tmp / "rank0.pt"), torch.load(tmp / "rank1.pt")
    assert "crf.transitions" in rank0 and all(torch.equal(rank0[name], rank1[name]) for name in rank0)
    assert double["test_f1"] == pytest.approx(single["test_f1"], abs=1e-9)
    assert (tmp / "crf-two" / "test_predictions.conll").read_text() == (
        tmp / "crf-one" / "test_predictions.conll"
    ).read_text()
