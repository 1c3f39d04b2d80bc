"""Document context (FLERT-style `context_size`): a synthetic corpus where a word's entity type is only
decidable from the neighbouring sentence of its document. Trained with context the model gets it right;
trained without, it cannot do better than guessing."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from .helpers import CITIES, ORGS, PERSONS, running_server, tiny_recipe


def make_documents(n: int, seed: int) -> list[list[tuple[list[str], list[str]]]]:
    """Documents of two sentences: a cue naming two cities or two organisations, and a target sentence
    whose first word (a name that is ambiguous on its own) is an entity of the cue's type. The cue comes
    before or after the target, so both left and right context matter."""
    rng = random.Random(seed)
    documents = []
    for _ in range(n):
        type_ = rng.choice(["LOC", "ORG"])
        pool = CITIES if type_ == "LOC" else ORGS
        cue = ([rng.choice(pool), "and", rng.choice(pool), "."], [f"B-{type_}", "O", f"B-{type_}", "O"])
        target = ([rng.choice(PERSONS), "said", "today", "."], [f"B-{type_}", "O", "O", "O"])
        documents.append([cue, target] if rng.random() < 0.5 else [target, cue])
    return documents


def write_documents(path: Path, documents) -> Path:
    lines = []
    for sentences in documents:
        lines += ["-DOCSTART- O", ""]
        for tokens, tags in sentences:
            lines += [f"{t}\t{g}" for t, g in zip(tokens, tags)] + [""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def document_corpus(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("documents")
    return {
        name: write_documents(root / f"{name}.conll", make_documents(n, seed))
        for name, n, seed in (("train", 300, 1), ("validation", 40, 2), ("test", 60, 3))
    }


def _train(tiny_model_dir, corpus, output_dir, context_size: int) -> dict:
    from nertune.training.run import run_training

    recipe = tiny_recipe(tiny_model_dir, corpus, output_dir, f"context_size={context_size}", "num_train_epochs=8")
    return run_training(recipe)


@pytest.fixture(scope="module")
def context_run(tmp_path_factory, tiny_model_dir, document_corpus):
    out = tmp_path_factory.mktemp("with-context") / "run"
    return out, _train(tiny_model_dir, document_corpus, out, context_size=12)


def test_context_makes_the_undecidable_type_learnable(tmp_path, tiny_model_dir, document_corpus, context_run):
    _, with_context = context_run
    without = _train(tiny_model_dir, document_corpus, tmp_path / "run", context_size=0)
    print("with", with_context["test_f1"], "without", without["test_f1"])
    assert with_context["test_f1"] >= 0.97
    assert without["test_f1"] < 0.9


def test_evaluation_reads_with_the_run_context(context_run):
    from nertune.evaluation.run import run_evaluation

    run_dir, metrics = context_run
    assert run_evaluation(run_dir, bootstrap=0)["f1"] == pytest.approx(metrics["test_f1"])
    # The same model evaluated sentence by sentence loses exactly what context gave it.
    assert run_evaluation(run_dir, ["context_size=0"], name="no-context", bootstrap=0)["f1"] < 0.9


def _target_types(documents) -> list[str]:
    return [tags[0][2:] for sentences in documents for tokens, tags in sentences if tokens[1] == "said"]


def test_predict_conll_documents_and_jsonl_document_ids(tmp_path, context_run, caplog):
    from nertune.inference.files import run_prediction

    run_dir, _ = context_run
    documents = make_documents(30, seed=7)
    gold = _target_types(documents)
    # CoNLL with -DOCSTART- lines: each document's sentences are each other's context.
    unlabelled = tmp_path / "in.conll"
    unlabelled.write_text(
        "\n".join(
            line
            for sentences in documents
            for line in ["-DOCSTART-", "", *(w for tokens, _ in sentences for w in [*tokens, ""])]
        ),
        encoding="utf-8",
    )
    run_prediction(run_dir, unlabelled, tmp_path / "out.jsonl")
    results = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(results) == 60
    assert [r["entities"][0]["type"] for r in results if r["words"][1] == "said"] == gold

    # JSONL: sentences sharing a document_id, interleaved with another document's, and more records than
    # one prediction chunk holds (batch_size=1: chunks of 16), so no document may be cut in two.
    records = [
        {"id": f"{d}-{s}", "text": " ".join(tokens), "document_id": d}
        for d, sentences in enumerate(documents)
        for s, (tokens, _) in enumerate(sentences)
    ]
    records = records[0::2] + records[1::2]
    (tmp_path / "in.jsonl").write_text("\n".join(json.dumps(r) for r in records), encoding="utf-8")
    run_prediction(run_dir, tmp_path / "in.jsonl", tmp_path / "out2.jsonl", batch_size=1)
    results = {r["id"]: r for r in map(json.loads, (tmp_path / "out2.jsonl").read_text().splitlines())}
    predicted = [
        results[f"{d}-{s}"]["entities"][0]["type"]
        for d, sentences in enumerate(documents)
        for s, (tokens, _) in enumerate(sentences)
        if tokens[1] == "said"
    ]
    assert predicted == gold

    # Without document ids the model still answers, says why it may do worse, and guesses the targets.
    for record in records:
        del record["document_id"]
    (tmp_path / "in3.jsonl").write_text("\n".join(json.dumps(r) for r in records), encoding="utf-8")
    with caplog.at_level("WARNING"):
        run_prediction(run_dir, tmp_path / "in3.jsonl", tmp_path / "out3.jsonl")
    assert "trained with document context (context_size=12) but the input has no documents" in caplog.text
    results = {r["id"]: r for r in map(json.loads, (tmp_path / "out3.jsonl").read_text().splitlines())}
    guessed = [
        (results[f"{d}-{s}"]["entities"] or [{"type": None}])[0]["type"]
        for d, sentences in enumerate(documents)
        for s, (tokens, _) in enumerate(sentences)
        if tokens[1] == "said"
    ]
    assert guessed != gold


def test_serve_a_document(tmp_path, context_run):
    import httpx

    run_dir, _ = context_run
    documents = make_documents(12, seed=11)
    with running_server(run_dir, tmp_path / "server.log") as url:
        assert httpx.get(f"{url}/info").json()["context_size"] == 12
        predicted = []
        for sentences in documents:
            response = httpx.post(f"{url}/predict", json={"document": [" ".join(t) for t, _ in sentences]}, timeout=30)
            assert response.status_code == 200, response.text
            results = response.json()["results"]
            assert len(results) == 2
            predicted += [r["entities"][0]["type"] for r in results if r["words"][1] == "said"]
    assert predicted == _target_types(documents)


def test_context_needs_documents_in_the_training_data(tmp_path, tiny_model_dir, synthetic_corpus):
    from nertune.data import DataError
    from nertune.training.run import run_training

    recipe = tiny_recipe(tiny_model_dir, synthetic_corpus, tmp_path / "run", "context_size=8")
    with pytest.raises(DataError, match="context_size=8 needs documents, but the training data has no -DOCSTART-"):
        run_training(recipe)


@pytest.mark.slow
def test_crf_head_reads_the_context_too(tmp_path, tiny_model_dir, document_corpus):
    from nertune.inference.predictor import NerPredictor
    from nertune.training.run import run_training

    recipe = tiny_recipe(
        tiny_model_dir,
        document_corpus,
        tmp_path / "run",
        "context_size=12",
        "num_train_epochs=8",
        "head=crf",
        "crf_learning_rate=0.02",
    )
    assert run_training(recipe)["test_f1"] >= 0.97
    predictor = NerPredictor.from_pretrained(tmp_path / "run", device="cpu", precision="fp32")
    documents = make_documents(20, seed=5)
    predicted = []
    for sentences in documents:
        results = predictor.predict_document([" ".join(tokens) for tokens, _ in sentences])
        predicted += [r["entities"][0]["type"] for r in results if r["words"][1] == "said"]
    assert predicted == _target_types(documents)


def test_predict_cli_text_documents(tmp_path, context_run, capsys):
    from nertune.cli import main

    run_dir, _ = context_run
    documents = make_documents(10, seed=13)
    source = tmp_path / "documents.txt"  # one sentence per line, a blank line (or several) between documents
    source.write_text(
        "\n\n\n".join("\n".join(" ".join(t) for t, _ in sentences) for sentences in documents) + "\n", encoding="utf-8"
    )
    assert (
        main(["predict", str(run_dir), "--input", str(source), "--output", str(tmp_path / "out.jsonl"), "--documents"])
        == 0
    )
    results = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(results) == len(source.read_text().splitlines())  # blank lines keep their place, as empty results
    assert [r["entities"][0]["type"] for r in results if r["words"][1:2] == ["said"]] == _target_types(documents)

    assert (
        main(
            [
                "predict",
                str(run_dir),
                "--input",
                str(tmp_path / "out.jsonl"),
                "--output",
                str(tmp_path / "again.jsonl"),
                "--documents",
            ]
        )
        == 2
    )
    assert "--documents is for text input; jsonl input marks documents itself" in capsys.readouterr().err


def test_model_card_tells_pipeline_users_about_context(context_run, trained_model_dir):
    run_dir, _ = context_run
    card = (run_dir / "README.md").read_text(encoding="utf-8")
    assert "trained with document context: each sentence read with up to 12 sub-tokens" in card
    assert "context_size: 12" in card
    assert "document context" not in (trained_model_dir / "README.md").read_text(encoding="utf-8")
