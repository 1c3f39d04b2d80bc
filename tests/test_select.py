"""`nertune select`: active-learning selection from an unlabelled pool with a real trained tiny model."""

from __future__ import annotations

import json

import pytest
import torch

from nertune.cli import loop, main
from nertune.errors import RequestError
from nertune.heads.crf import CrfHead, LinearChainCRF, crf_marginals
from nertune.inference import select
from nertune.inference.select import scored_path_for, select_examples, sentence_uncertainty

from .helpers import make_sentences

# Sentences of the synthetic corpus (the model tags them right) and word salads it never saw.
SURE = [
    "john lives in paris .",
    "mary works at google in london today .",
    "alice bob visited the rome .",
    "carol lives in berlin .",
    "dave works at nasa in oslo today .",
    "erin frank visited the madrid .",
]
ODD = ["in in in lives the", "today . at at the the", "said said and a a ."]


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture()
def pool(tmp_path):
    path = tmp_path / "pool.txt"
    path.write_text("\n".join([*SURE[:3], *ODD, *SURE[3:]]) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("measure", ["least-confidence", "margin"])
def test_uncertainty_ranks_the_sentences_the_model_is_sure_of_last(trained_model_dir, pool, tmp_path, measure):
    out = tmp_path / "chosen.jsonl"
    assert main(["select", str(trained_model_dir), "--pool", str(pool), "--count", "3", "--output", str(out),
                 "--measure", measure]) == 0  # fmt: skip
    chosen = read_jsonl(out)
    assert sorted(r["text"] for r in chosen) == sorted(ODD)
    assert [r["rank"] for r in chosen] == [1, 2, 3]
    scores = [r["score"] for r in chosen]
    assert scores == sorted(scores, reverse=True)
    scored = read_jsonl(scored_path_for(out))  # every pool record, in pool order, with its score
    assert [r["text"] for r in scored] == [*SURE[:3], *ODD, *SURE[3:]]
    sure = [r for r in scored if r["text"] in SURE]
    assert max(r["score"] for r in sure) < min(scores)
    # The pre-annotations are the model's entities, as `nertune predict` writes them.
    john = scored[0]
    assert [(e["type"], e["text"]) for e in john["entities"]] == [("PER", "john"), ("LOC", "paris")]


def test_select_reads_jsonl_tokens_and_conll_pools(trained_model_dir, tmp_path):
    jsonl = tmp_path / "pool.jsonl"
    jsonl.write_text(
        "\n".join(json.dumps({"id": i, "tokens": s.split()}) for i, s in enumerate([SURE[0], ODD[0]])) + "\n"
    )
    conll = tmp_path / "pool.conll"
    conll.write_text("\n\n".join("\n".join(s.split()) for s in [SURE[0], ODD[0]]) + "\n")
    for path in (jsonl, conll):
        out = tmp_path / f"{path.stem}-{path.suffix[1:]}.jsonl"
        (chosen,) = select_examples(trained_model_dir, path, out, 1)
        assert chosen["tokens"] == ODD[0].split()
    assert chosen["line"] > 1  # CoNLL: where the record starts in the pool
    assert read_jsonl(tmp_path / "pool-jsonl.jsonl")[0]["id"] == 1


def test_random_selection_is_seeded(trained_model_dir, tmp_path):
    pool = tmp_path / "pool.txt"
    texts = list(dict.fromkeys(" ".join(tokens) for tokens, _ in make_sentences(60, seed=5)))
    pool.write_text("\n".join(texts) + "\n")

    def texts_of(out, **options):
        return [r["text"] for r in select_examples(trained_model_dir, pool, tmp_path / out, 8, **options)]

    first = texts_of("r0.jsonl", strategy="random", seed=0)
    assert texts_of("r0-again.jsonl", strategy="random", seed=0) == first
    assert texts_of("r1.jsonl", strategy="random", seed=1) != first
    assert set(texts_of("u.jsonl")) != set(first)  # not the uncertainty ranking


def test_diverse_drops_near_duplicates(trained_model_dir, tmp_path):
    pool = tmp_path / "pool.txt"
    duplicates = [ODD[0], ODD[0] + " .", "In  in in lives the", ODD[0] + " the"]
    pool.write_text("\n".join([*SURE, *duplicates, ODD[1], ODD[2]]) + "\n")
    plain = [r["text"] for r in select_examples(trained_model_dir, pool, tmp_path / "u.jsonl", 3)]
    assert sum(text in duplicates for text in plain) >= 2  # uncertainty alone sends near-duplicates
    diverse = [r["text"] for r in select_examples(trained_model_dir, pool, tmp_path / "d.jsonl", 3, "diverse")]
    assert sum(text in duplicates for text in diverse) == 1
    assert len(diverse) == 3 and {ODD[1], ODD[2]} <= set(diverse)


def test_an_interrupted_scoring_resumes(trained_model_dir, pool, tmp_path):
    out = tmp_path / "chosen.jsonl"
    select_examples(trained_model_dir, pool, out, 2)
    scored_path = scored_path_for(out)
    lines = scored_path.read_text(encoding="utf-8").splitlines(keepends=True)
    # Interrupted after 4 records, in the middle of the 5th; the kept records are not scored again.
    kept = json.loads(lines[0])
    kept["score"] = 0.999
    scored_path.write_text(json.dumps(kept) + "\n" + "".join(lines[1:4]) + lines[4][:10], encoding="utf-8")
    chosen = select_examples(trained_model_dir, pool, out, 2, resume=True)
    rescored = read_jsonl(scored_path)
    assert len(rescored) == len(lines)
    assert rescored[1:] == [json.loads(line) for line in lines[1:]]
    assert chosen[0]["text"] == SURE[0] and chosen[0]["score"] == 0.999


def test_bad_selection_options_are_clear_errors(trained_model_dir, pool, tmp_path, capsys):
    with pytest.raises(RequestError, match="count must be at least 1"):
        select_examples(trained_model_dir, pool, tmp_path / "o.jsonl", 0)
    with pytest.raises(RequestError, match="unknown selection strategy 'best'"):
        select_examples(trained_model_dir, pool, tmp_path / "o.jsonl", 1, strategy="best")
    with pytest.raises(RequestError, match="would overwrite the pool"):
        select_examples(trained_model_dir, pool, pool, 1)
    assert main(["select", str(trained_model_dir), "--pool", str(tmp_path / "missing.txt"), "--count", "1",
                 "--output", str(tmp_path / "o.jsonl")]) == 2  # fmt: skip
    assert "input file not found" in capsys.readouterr().err


def test_the_cli_offers_the_strategies_measures_and_units_of_select():
    assert (loop.STRATEGIES, loop.MEASURES, loop.UNITS) == (select.STRATEGIES, select.MEASURES, select.UNITS)


def test_uncertainty_measures():
    sure = torch.tensor([[0.98, 0.01, 0.01], [0.9, 0.05, 0.05]])
    torn = torch.tensor([[0.5, 0.49, 0.01], [0.9, 0.05, 0.05]])
    for measure in ("least-confidence", "margin"):
        assert sentence_uncertainty(torn, measure) > sentence_uncertainty(sure, measure)
    assert sentence_uncertainty(torn, "margin") == pytest.approx(1 - ((0.5 - 0.49) + (0.9 - 0.05)) / 2)
    assert sentence_uncertainty(torch.zeros((0, 3))) == 0.0


def test_the_crf_head_gives_crf_marginals_as_posteriors():
    labels = ["O", "B-PER", "I-PER"]
    model = torch.nn.Module()
    model.crf = LinearChainCRF(labels)
    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in model.crf.parameters():
            parameter.normal_()
    emissions = torch.randn(5, 3)
    head = CrfHead().bind(model)
    (posteriors,) = head.word_posteriors([emissions])
    crf = model.crf
    expected = crf_marginals(emissions, crf.start_transitions, crf.transitions, crf.end_transitions)
    assert torch.allclose(posteriors, expected.detach())
    assert not torch.allclose(posteriors, emissions.softmax(-1), atol=1e-3)  # the transitions count


def test_select_whole_documents(trained_model_dir, tmp_path):
    pool = tmp_path / "pool.txt"  # --documents: blank lines separate documents
    pool.write_text(f"{SURE[0]}\n{SURE[1]}\n\n{SURE[2]}\n{ODD[0]}\n\n{SURE[3]}\n")
    out = tmp_path / "docs.jsonl"
    assert main(["select", str(trained_model_dir), "--pool", str(pool), "--count", "1", "--output", str(out),
                 "--unit", "document", "--documents"]) == 0  # fmt: skip
    chosen = read_jsonl(out)
    assert [r["text"] for r in chosen] == [SURE[2], ODD[0]]  # the document with the word salad, whole, in order
    assert {r["rank"] for r in chosen} == {1} and len({r["document_id"] for r in chosen}) == 1
    document = [r for r in read_jsonl(scored_path_for(out)) if r.get("document_id") == chosen[0]["document_id"]]
    mean = sum(r["score"] * len(r["words"]) for r in document) / sum(len(r["words"]) for r in document)
    assert chosen[0]["document_score"] == pytest.approx(mean, abs=1e-5)
    two = select_examples(trained_model_dir, pool, tmp_path / "two.jsonl", 2, "random", unit="document", documents=True)
    assert len({r["document_id"] for r in two}) == 2
    with pytest.raises(RequestError, match="not diverse"):
        select_examples(trained_model_dir, pool, out, 1, "diverse", unit="document", documents=True)


@pytest.mark.slow  # trains a model
def test_select_and_calibration_with_the_crf_head(tiny_model_dir, tmp_path, pool):
    """A real CRF run: calibrated on its marginals at the end of training, scored by them in select."""
    from nertune.training.run import run_training

    from .helpers import tiny_recipe, write_corpus

    recipe = tiny_recipe(
        tiny_model_dir, write_corpus(tmp_path), tmp_path / "crf", "head=crf", "crf_learning_rate=0.02",
        "max_steps=80", "eval_strategy=no", "save_strategy=no",
    )  # fmt: skip
    metrics = run_training(recipe)
    assert set(metrics["calibration"]) == {"temperature", "ece_before", "ece_after"}
    config = json.loads((tmp_path / "crf" / "config.json").read_text())
    assert config["nertune"]["head"] == "crf" and config["nertune"]["calibration"] == metrics["calibration"]
    chosen = select_examples(tmp_path / "crf", pool, tmp_path / "chosen.jsonl", 3)
    assert sorted(r["text"] for r in chosen) == sorted(ODD)
