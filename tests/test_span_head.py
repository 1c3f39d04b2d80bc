"""head=span: nested entities trained, decoded, scored, predicted, served and reloaded (a tiny model on a
CLUENER-style corpus with companies nested in book titles)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import httpx
import pytest

from nertune.cli import main
from nertune.evaluation.metrics import span_metrics
from nertune.heads.span import outermost, resolve_spans
from tests.helpers import build_tiny_model, running_server

NAMES = ["张伟", "王芳", "李娜", "刘洋"]
COMPANIES = ["招商银行", "腾讯集团"]


def corpus(n: int, seed: int) -> list[dict]:
    """CLUENER-style records: a name, and either an organisation or a book title with a company inside it."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        name, company = rng.choice(NAMES), rng.choice(COMPANIES)
        if rng.random() < 0.4:
            text = f"{name}在{company}工作"
            label = {"name": {name: [[0, 1]]}, "company": {company: [[3, 6]]}}
        else:
            book = f"《{company}之路》"
            text = f"{name}读了{book}"
            label = {"name": {name: [[0, 1]]}, "book": {book: [[4, 4 + len(book) - 1]]}}
            label["company"] = {company: [[5, 5 + len(company) - 1]]}
        if rng.random() < 0.3:  # a second clause: longer than one window
            other = rng.choice(COMPANIES)
            start = len(text) + 2
            text += f"，在{other}工作"
            label.setdefault("company", {}).setdefault(other, []).append([start, start + len(other) - 1])
        out.append({"text": text, "label": label})
    return out


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


# -- the decoding rule and the nested metric


def test_nested_spans_are_kept_and_crossing_ones_resolved_by_score():
    book, company = ("book", 2, 9, 0.9), ("company", 3, 7, 0.8)
    assert resolve_spans([company, book]) == [book, company]  # nested: both, outer first
    crossing = ("name", 6, 11, 0.95)  # crosses both, scores higher: it stays, the others that cross it go
    assert resolve_spans([book, company, crossing]) == [crossing]
    weaker = ("name", 6, 11, 0.5)
    assert resolve_spans([book, company, weaker]) == [book, company]
    assert outermost([book, company]) == [book]


def test_the_span_metric_counts_inner_entities():
    gold = [[("book", 2, 9), ("company", 3, 7)], [("name", 0, 1)]]
    scores = span_metrics(gold, [[("book", 2, 9)], [("name", 0, 1)]])  # the inner company missed
    assert scores["n_gold"] == 3 and scores["n_nested_gold"] == 1
    assert scores["precision"] == 1.0 and scores["recall"] == pytest.approx(2 / 3)
    assert scores["per_type"]["company"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert span_metrics(gold, gold)["f1"] == 1.0 == span_metrics(gold, gold)["macro_f1"]


# -- training and using a span head


@pytest.fixture(scope="module")
def span_run(tmp_path_factory) -> tuple[Path, dict, Path]:
    from transformers import BertTokenizer

    from nertune.recipe.schema import load_recipe
    from nertune.training.run import run_training

    tmp = tmp_path_factory.mktemp("span")
    records = corpus(160, 1)
    chars = dict.fromkeys("".join(r["text"] for r in records))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars]
    model_dir = tmp / "tiny-zh"
    BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}).save_pretrained(model_dir)
    build_tiny_model(seed=0, vocab_size=len(vocab), max_position_embeddings=64).save_pretrained(model_dir)
    train = write_jsonl(tmp / "train.json", records)
    dev = write_jsonl(tmp / "dev.json", corpus(30, 2))
    recipe = load_recipe(
        None,
        [
            f"model_name_or_path={model_dir}",
            f"output_dir={tmp / 'run'}",
            f"data.train_file={train}",
            f"data.validation_file={dev}",
            f"data.test_file={dev}",
            "data.nested=keep",
            "head=span",
            "span_max_width=12",
            "learning_rate=5e-3",
            "num_train_epochs=8",
            "warmup_ratio=0",
            "per_device_train_batch_size=16",
            "eval_strategy=epoch",
            "save_strategy=no",
            "report_to=none",
            "precision=fp32",
            "max_length=16",  # the longer sentences are cut into windows
            "window_overlap=4",
        ],
    )
    return tmp / "run", run_training(recipe), dev


def test_span_head_learns_both_levels_and_reports_span_counts(span_run):
    run_dir, metrics, _ = span_run
    assert metrics["data_spans"]["data.train_file"]["nested_spans"] > 0
    assert metrics["data_spans"]["data.train_file"]["dropped_spans"] == 0
    assert "B-company" in metrics["labels"]  # the inner level's type is a label
    assert metrics["test_spans"]["n_nested_gold"] > 0
    assert (
        metrics["test_per_type"]["company"]["support"] > metrics["test_outer_level"]["per_type"]["company"]["support"]
    )
    assert metrics["test_f1"] > 0.8 and metrics["test_per_type"]["company"]["f1"] > 0.8, metrics
    config = json.loads((run_dir / "config.json").read_text())
    assert config["nertune"]["head"] == "span" and config["nertune"]["head_settings"]["max_width"] == 12
    # Its per-word outputs are start/end vectors, not label posteriors: no temperature is fitted on them.
    assert config["nertune"].get("calibration") is None and "calibration" not in metrics
    card = (run_dir / "README.md").read_text(encoding="utf-8")
    assert "`pipeline()` cannot decode it" in card and 'pipeline("token-classification"' not in card
    history = json.loads((run_dir / "trainer_state.json").read_text())["log_history"]
    assert any("eval_f1" in entry and "eval_loss" in entry for entry in history)


def test_predict_writes_both_levels_to_jsonl_and_the_outer_one_to_conll(span_run, tmp_path):
    run_dir, _, _ = span_run
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "王芳读了《腾讯集团之路》"}])
    assert main(["predict", str(run_dir), "--input", str(source), "--output", str(tmp_path / "out.jsonl")]) == 0
    (result,) = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    found = {(e["type"], e["text"]) for e in result["entities"]}
    assert {("book", "《腾讯集团之路》"), ("company", "腾讯集团"), ("name", "王芳")} <= found
    conll = tmp_path / "in.conll"
    conll.write_text("\n".join("王芳读了《腾讯集团之路》") + "\n", encoding="utf-8")
    assert main(["predict", str(run_dir), "--input", str(conll), "--output", str(tmp_path / "out.conll")]) == 0
    tags = [line.split()[-1] for line in (tmp_path / "out.conll").read_text(encoding="utf-8").splitlines() if line]
    assert tags[4:12] == ["B-book"] + ["I-book"] * 7  # the outer level: the book, not the company in it


def test_serve_answers_both_levels(span_run, tmp_path):
    run_dir, _, _ = span_run
    with running_server(run_dir, tmp_path / "server.log") as url:
        answer = httpx.post(f"{url}/predict", json={"text": "李娜读了《招商银行之路》"}, timeout=30).json()
    text = json.dumps(answer, ensure_ascii=False)
    assert '"book"' in text and '"company"' in text and "招商银行" in text


def test_evaluate_scores_span_sets_and_the_model_reloads(span_run, tmp_path):
    from nertune.evaluation.run import run_evaluation
    from nertune.inference.predictor import NerPredictor

    run_dir, metrics, _ = span_run
    scores = run_evaluation(run_dir, bootstrap=0, name="nested")
    assert scores["mode"] == "spans" and scores["n_nested_gold"] > 0
    assert scores["f1"] == pytest.approx(metrics["test_f1"])
    written = json.loads((run_dir / "eval" / "nested" / "metrics.json").read_text())
    assert written["per_type"]["company"]["support"] == metrics["test_per_type"]["company"]["support"]
    predictor = NerPredictor.from_pretrained(run_dir)
    assert predictor.head.max_width == 12
    (result,) = predictor.predict([list("刘洋读了《招商银行之路》")])
    assert {(e["type"], e["start"], e["end"]) for e in result["entities"]} >= {("book", 4, 12), ("company", 5, 9)}


def test_export_runs_the_encoder_in_onnx_and_the_span_scorer_in_python(span_run, tmp_path):
    from nertune.inference.export import export_run
    from nertune.inference.predictor import NerPredictor

    run_dir, _, _ = span_run
    report = export_run(run_dir, tmp_path / "onnx", max_parity_sentences=20)
    assert report["head"] == "span" and report["entities_identical"] is True, report
    exported = NerPredictor.from_pretrained(tmp_path / "onnx")
    reference = NerPredictor.from_pretrained(run_dir, device="cpu", precision="fp32")
    sentences = [list(r["text"]) for r in corpus(10, 5)]
    spans = [[(e["type"], e["start"], e["end"]) for e in r["entities"]] for r in exported.predict(sentences)]
    assert spans == [[(e["type"], e["start"], e["end"]) for e in r["entities"]] for r in reference.predict(sentences)]
    assert any(len(s) == 3 for s in spans)  # the nested company too


def test_continuing_a_span_model_scores_it_first_and_keeps_its_head(span_run, tmp_path):
    from nertune.recipe.schema import load_recipe
    from nertune.training.run import run_training

    run_dir, _, dev = span_run
    recipe = load_recipe(
        None,
        [
            f"model_name_or_path={run_dir}",
            f"output_dir={tmp_path / 'more'}",
            f"data.train_file={dev}",
            f"data.validation_file={dev}",
            f"data.test_file={dev}",
            "data.nested=keep",
            "head=span",
            "span_max_width=12",
            "max_steps=1",
            "learning_rate=1e-9",
            "eval_strategy=no",
            "save_strategy=no",
            "report_to=none",
            "precision=fp32",
            "max_length=16",
            "window_overlap=4",
        ],
    )
    metrics = run_training(recipe)
    assert metrics["test_f1_before"] > 0.8 and metrics["test_per_type_before"]["book"]["f1"] == 1.0, metrics
    assert metrics["test_f1"] > 0.8  # the trained span scorer continued, not a fresh one
