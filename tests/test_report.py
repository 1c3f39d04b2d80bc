"""Evaluation tooling: error analysis, bootstrap CI, label renaming, plots and the files `nertune evaluate` writes."""

from __future__ import annotations

import importlib.util
import json

import pytest

from nertune.data import apply_label_map
from nertune.evaluation.metrics import entity_metrics
from nertune.evaluation.plots import best_checkpoint, row_normalised
from nertune.evaluation.report import (
    ERROR_KINDS,
    bootstrap_f1_ci,
    error_analysis,
    plot_confusion_matrix,
    plot_learning_curves,
    sentence_error_counts,
)
from nertune.recipe.schema import RecipeError, load_recipe

from .helpers import make_sentences, write_conll

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 1024, (path, len(data))


# --------------------------------------------------------------------------- error analysis


def test_error_analysis_counts_every_kind_by_hand():
    words = [["w"] * 10, ["w"] * 6, ["w"] * 4]
    gold = [
        # PER 0-2 exact | LOC 3-4 predicted ORG (type) | ORG 5-8 predicted ORG 5-7 (boundary) | 9: nothing
        ["B-PER", "I-PER", "O", "B-LOC", "O", "B-ORG", "I-ORG", "I-ORG", "O", "O"],
        # MISC 0-2 predicted PER 1-2 (boundary + type) | LOC 3 missed | pred ORG 5 spurious
        ["B-MISC", "I-MISC", "O", "B-LOC", "O", "O"],
        # LOC 0 predicted ORG 0 (a second type error, same confusion) | PER 2 exact
        ["B-LOC", "O", "B-PER", "O"],
    ]
    pred = [
        ["B-PER", "I-PER", "O", "B-ORG", "O", "B-ORG", "I-ORG", "O", "O", "O"],
        ["O", "B-PER", "O", "O", "O", "B-ORG"],
        ["B-ORG", "O", "B-PER", "O"],
    ]
    a = error_analysis(gold, pred, "IOB2", words=words, max_examples=1)
    assert a["counts"] == {"exact": 2, "type": 2, "boundary": 1, "boundary_type": 1, "missed": 1, "spurious": 1}
    assert a["n_gold"] == 7 == sum(a["counts"][k] for k in ERROR_KINDS if k != "spurious")
    assert a["n_pred"] == 7 and a["n_sentences"] == 3
    assert a["top_confusions"] == [{"gold": "LOC", "pred": "ORG", "count": 2}]
    # Examples: at most max_examples per kind, with the sentence's words and tags and the spans involved.
    assert set(a["examples"]) == set(ERROR_KINDS) - {"exact"}
    assert all(len(v) == 1 for v in a["examples"].values())
    missed = a["examples"]["missed"][0]
    assert missed["sentence"] == 1 and missed["gold_span"] == ["LOC", 3, 4] and missed["pred_span"] is None
    assert missed["words"] == words[1] and missed["gold"] == gold[1] and missed["pred"] == pred[1]
    assert a["examples"]["spurious"][0]["pred_span"] == ["ORG", 5, 6]
    assert a["examples"]["boundary_type"][0]["gold_span"] == ["MISC", 0, 2]
    # Confusion matrix: rows gold types + none (spurious), columns predicted types + boundary + none (missed).
    m = a["confusion_matrix"]
    assert m["gold_labels"] == ["LOC", "MISC", "ORG", "PER", "none (spurious)"]
    assert m["pred_labels"] == ["LOC", "MISC", "ORG", "PER", "boundary (same type)", "none (missed)"]
    cell = {(g, p): m["counts"][i][j] for i, g in enumerate(m["gold_labels"]) for j, p in enumerate(m["pred_labels"])}
    assert cell["LOC", "ORG"] == 2 and cell["LOC", "none (missed)"] == 1
    # The ORG predicted with a shorter span is a boundary error, not a hit on the diagonal.
    assert cell["ORG", "ORG"] == 0 and cell["ORG", "boundary (same type)"] == 1
    assert cell["MISC", "PER"] == 1 and cell["PER", "PER"] == 2 and cell["none (spurious)", "ORG"] == 1
    counts, shares, totals = row_normalised(m)
    assert list(totals) == [3, 1, 1, 2, 1] and shares[0].tolist() == pytest.approx([0, 0, 2 / 3, 0, 0, 1 / 3])
    assert shares.sum(axis=1).tolist() == pytest.approx([1.0] * 5)
    assert sum(map(sum, m["counts"])) == a["n_gold"] + a["counts"]["spurious"]
    json.dumps(a)  # JSON-ready


def test_error_analysis_perfect_and_bioes():
    tags = [["S-PER", "O", "B-LOC", "E-LOC"]]
    a = error_analysis(tags, tags, "BIOES")
    assert a["counts"]["exact"] == 2 and sum(a["counts"].values()) == 2
    assert all(not v for v in a["examples"].values())


# --------------------------------------------------------------------------- bootstrap


def _noisy_predictions(n: int, seed: int):
    """Gold from the synthetic corpus and predictions with every third sentence's last entity wrong."""
    gold = [tags for _, tags in make_sentences(n, seed=seed)]
    pred = []
    for i, tags in enumerate(gold):
        tags = list(tags)
        if i % 3 == 0:
            j = max(k for k, t in enumerate(tags) if t.startswith("B-"))
            tags[j] = "B-ORG" if tags[j] != "B-ORG" else "B-PER"
        pred.append(tags)
    return gold, pred


def test_bootstrap_ci_brackets_point_f1_is_seeded_and_narrows():
    gold, pred = _noisy_predictions(30, seed=5)
    small = bootstrap_f1_ci(gold, pred, "IOB2", n=1000, seed=0)
    assert small["f1"] == pytest.approx(entity_metrics(gold, pred)["f1"])
    assert small["f1"] == pytest.approx(entity_metrics(gold, pred, strict=True)["f1"])
    lo, hi = small["ci"]
    assert lo < small["f1"] < hi and 0 <= lo and hi <= 1
    assert bootstrap_f1_ci(gold, pred, "IOB2", n=1000, seed=0) == small  # deterministic for a seed
    assert bootstrap_f1_ci(gold, pred, "IOB2", n=1000, seed=1)["ci"] != small["ci"]
    strict = bootstrap_f1_ci(gold, pred, "IOB2", n=1000, seed=0, strict=True)
    assert strict == small  # valid IOB2: strict reads the same entities
    big_gold, big_pred = _noisy_predictions(600, seed=6)
    big = bootstrap_f1_ci(big_gold, big_pred, "IOB2", n=1000, seed=0)
    assert big["ci"][0] < big["f1"] < big["ci"][1]
    assert big["ci"][1] - big["ci"][0] < (hi - lo) / 2  # ~sqrt(20) times narrower


def test_bootstrap_per_type_intervals_bracket_each_types_scores():
    gold, pred = _noisy_predictions(90, seed=7)
    ci = bootstrap_f1_ci(gold, pred, "IOB2", n=500, seed=0)
    scores = entity_metrics(gold, pred)
    assert set(ci["per_type"]) == set(scores["per_type"]) == {"PER", "LOC", "ORG"}
    for t, row in ci["per_type"].items():
        for key in ("precision", "recall", "f1"):
            assert row[key] == pytest.approx(scores["per_type"][t][key]), (t, key)
            lo, hi = row[f"{key}_ci"]
            assert 0 <= lo <= row[key] <= hi <= 1, (t, key)
        assert row["support"] == scores["per_type"][t]["support"]
    # Only the last entity of some sentences is wrong: PER (always first) is never touched.
    assert ci["per_type"]["PER"]["f1_ci"] == [1.0, 1.0] and ci["per_type"]["ORG"]["precision_ci"][0] < 1
    assert ci["ci"] == bootstrap_f1_ci(gold, pred, "IOB2", n=500, seed=0, strict=True)["ci"]


def test_sentence_error_counts_are_misses_plus_spurious():
    gold = [["B-PER", "O", "B-LOC"], ["B-ORG", "I-ORG", "O"], ["O"]]
    pred = [["B-PER", "O", "B-LOC"], ["B-ORG", "O", "B-LOC"], ["O"]]
    assert sentence_error_counts(gold, pred) == [0, 3, 0]  # ORG 0-2 missed, ORG 0-1 and LOC 2 spurious


def test_bootstrap_perfect_and_empty():
    gold = [tags for _, tags in make_sentences(10)]
    assert bootstrap_f1_ci(gold, gold, n=50)["ci"] == [1.0, 1.0]
    assert bootstrap_f1_ci([], [], n=10)["ci"] == [0.0, 0.0]
    with pytest.raises(ValueError, match="sentences"):
        bootstrap_f1_ci(gold, gold[:-1])


# --------------------------------------------------------------------------- label map


def test_label_map_recipe_key_from_command_line_and_yaml(tmp_path):
    recipe = load_recipe(None, ["model_name_or_path=m", "data.label_map=PERSON:PER, LOCATION:LOC,MISC:O"])
    assert recipe.data.label_map == {"PERSON": "PER", "LOCATION": "LOC", "MISC": "O"}
    flow = load_recipe(None, ["model_name_or_path=m", "data.label_map={PERSON: PER}"])
    assert flow.data.label_map == {"PERSON": "PER"}
    assert load_recipe(None, ["model_name_or_path=m"]).data.label_map is None
    yml = tmp_path / "r.yaml"
    yml.write_text("model_name_or_path: m\ndata:\n  label_map:\n    PERSON: PER\n    geo-loc: LOC\n")
    assert load_recipe(yml).data.label_map == {"PERSON": "PER", "geo-loc": "LOC"}
    for bad, message in (
        ("PERSON=PER", "FROM:TO"),
        ("PERSON:PER,LOC", "FROM:TO"),
        ("PERSON:", "FROM:TO"),
        ("A:B,A:C", "mapped twice"),
        ("[A, B]", "FROM:TO"),
    ):
        with pytest.raises(RecipeError, match=message):
            load_recipe(None, ["model_name_or_path=m", f"data.label_map={bad}"])
    yml.write_text("model_name_or_path: m\ndata:\n  label_map: [PERSON, PER]\n")
    with pytest.raises(RecipeError, match="label_map.*expected a mapping"):
        load_recipe(yml)


def test_apply_label_map_renames_types_and_drops_to_o():
    tags, used = apply_label_map(
        [["B-PERSON", "I-PERSON", "O", "B-MISC", "S-LOCATION"]],
        {"PERSON": "PER", "MISC": "O", "LOCATION": "LOC", "DATE": "O"},
    )
    assert tags == [["B-PER", "I-PER", "O", "O", "S-LOC"]]
    assert used == {"PERSON": 2, "MISC": 1, "LOCATION": 1, "DATE": 0}
    with pytest.raises(ValueError, match="'O' is not an entity type"):
        apply_label_map([["O"]], {"O": "PER"})
    with pytest.raises(ValueError, match="usable type"):
        apply_label_map([["O"]], {"PERSON": "P ER "})


# --------------------------------------------------------------------------- plots


def test_plots_are_valid_pngs(tmp_path):
    pytest.importorskip("matplotlib")
    gold = [["B-PER", "O", "B-LOC"], ["B-ORG", "I-ORG", "O"]]
    pred = [["B-PER", "O", "B-ORG"], ["O", "O", "B-LOC"]]
    out = plot_confusion_matrix(error_analysis(gold, pred)["confusion_matrix"], tmp_path / "cm.png")
    assert out == tmp_path / "cm.png"
    assert_png(out)
    state = tmp_path / "trainer_state.json"
    state.write_text(
        json.dumps(
            {
                "log_history": [
                    {"step": 5, "epoch": 0.5, "loss": 1.2},
                    {"step": 10, "epoch": 1.0, "loss": 0.6},
                    {"step": 10, "epoch": 1.0, "eval_loss": 0.5, "eval_f1": 0.7},
                    {"step": 20, "epoch": 2.0, "loss": 0.3},
                    {"step": 20, "epoch": 2.0, "eval_loss": 0.3, "eval_f1": 0.9},
                    {"step": 20, "epoch": 2.0, "train_loss": 0.7, "train_runtime": 1.0},
                ]
            }
        )
    )
    assert_png(plot_learning_curves(state, tmp_path / "lc.png"))
    assert best_checkpoint(json.loads(state.read_text())) == (20, 0.9)  # no best_* keys: the highest F1
    assert plot_learning_curves(tmp_path / "missing.json", tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()


def test_best_checkpoint_is_the_trainers_or_the_highest_f1():
    history = [{"step": s, "epoch": s / 10, "eval_f1": f} for s, f in ((10, 0.91), (20, 0.93), (30, 0.93), (40, 0.92))]
    assert best_checkpoint({"log_history": history}) == (20, 0.93)  # the first of the best, as the Trainer keeps
    assert best_checkpoint({"log_history": history, "best_model_checkpoint": "runs/x/checkpoint-40"}) == (40, 0.92)
    assert best_checkpoint({"log_history": history, "best_global_step": 30}) == (30, 0.93)
    assert best_checkpoint({"log_history": history, "best_global_step": 99}) == (20, 0.93)  # not in the log
    assert best_checkpoint({"log_history": [{"step": 5, "loss": 1.0}]}) is None


def test_plots_skipped_with_a_warning_without_matplotlib(tmp_path, monkeypatch, caplog):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    matrix = error_analysis([["B-PER"]], [["B-PER"]])["confusion_matrix"]
    with caplog.at_level("WARNING", logger="nertune.evaluation.plots"):
        assert plot_confusion_matrix(matrix, tmp_path / "cm.png") is None
    assert "matplotlib is not installed" in caplog.text and not (tmp_path / "cm.png").exists()


# --------------------------------------------------------------------------- nertune evaluate


def test_evaluate_writes_reports_and_renames_labels(trained_model_dir, tmp_path):
    from nertune.evaluation.run import run_evaluation

    rename = {"PER": "PERSON", "LOC": "LOCATION", "ORG": "ORGANIZATION"}
    sentences = [
        (tokens, [t if t == "O" else f"{t[:2]}{rename[t[2:]]}" for t in tags])
        for tokens, tags in make_sentences(24, seed=11)
    ]
    other = write_conll(tmp_path / "ontonotes_like.conll", sentences)
    with pytest.raises(ValueError, match=r"labels the model does not know: \['B-LOCATION'.*data.label_map"):
        run_evaluation(trained_model_dir, [f"data.test_file={other}"], name="unmapped")
    scores = run_evaluation(
        trained_model_dir,
        [f"data.test_file={other}", "data.label_map=PERSON:PER,LOCATION:LOC,ORGANIZATION:ORG"],
        name="mapped",
        bootstrap=200,
        bootstrap_seed=3,
    )
    assert scores["f1"] > 0.9 and set(scores["per_type"]) == {"PER", "LOC", "ORG"}
    assert scores["label_map"] == {"PERSON": "PER", "LOCATION": "LOC", "ORGANIZATION": "ORG"}

    out = trained_model_dir / "eval" / "mapped"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["mode"] == "default" and metrics["f1"] == pytest.approx(scores["f1"])
    assert set(metrics["default"]["per_type"]) == set(metrics["strict"]["per_type"]) == {"PER", "LOC", "ORG"}
    lo, hi = metrics["f1_ci95"]
    assert lo <= metrics["f1"] <= hi and metrics["bootstrap"] == {"n_resamples": 200, "seed": 3, "unit": "sentence"}
    errors = json.loads((out / "errors.json").read_text())
    assert set(errors) >= {"counts", "n_gold", "n_pred", "top_confusions", "confusion_matrix", "examples"}
    assert set(errors["counts"]) == set(ERROR_KINDS) and errors["counts"] == metrics["error_counts"]
    assert errors["n_gold"] == sum(errors["counts"][k] for k in ERROR_KINDS if k != "spurious") > 0
    report = (out / "report.txt").read_text()
    for needle in ("default", "strict", "micro avg", "95% CI", "B-PER", "exact", "boundary_type", "spurious"):
        assert needle in report, needle
    predictions = (out / "predictions.conll").read_text()
    assert "\tB-PER\t" in predictions and "PERSON" not in predictions  # gold written after renaming
    if importlib.util.find_spec("matplotlib"):
        assert_png(out / "confusion_matrix.png")
        assert_png(out / "learning_curves.png")  # the run's trainer_state.json has its training loss
    page = (out / "report.html").read_text()
    assert page.count('<tr data-type="') == 3 and 'id="confusion"' in page and 'id="worst"' in page
    assert "https://" not in page and "<script" not in page  # self-contained

    # Dropping a type to O: ORGANIZATION words become O in gold, so the model's ORG predictions are spurious.
    dropped = run_evaluation(
        trained_model_dir,
        [f"data.test_file={other}", "data.label_map=PERSON:PER,LOCATION:LOC,ORGANIZATION:O"],
        name="dropped",
        bootstrap=0,
    )
    assert "ORG" not in {t for t, row in dropped["per_type"].items() if row["support"]}
    assert dropped["error_counts"]["spurious"] > 0 and "f1_ci95" not in dropped
