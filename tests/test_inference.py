"""Inference: the word splitter, NerPredictor (agreement with transformers' pipeline), `nertune predict`."""

from __future__ import annotations

import json
import random

import pytest
import torch

from nertune.cli import main
from nertune.data.words import split_words
from nertune.errors import RequestError
from nertune.inference.predictor import NerPredictor

from .helpers import LABELS, random_head_model


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Tiny models on a shared 2-core machine: a second thread only spins waiting for the first.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def random_model_dir(tmp_path_factory, tiny_model_dir):
    return random_head_model(tmp_path_factory.mktemp("random-head"), tiny_model_dir, LABELS)


@pytest.fixture(scope="module")
def predictor(trained_model_dir):
    return NerPredictor.from_pretrained(trained_model_dir)


# --------------------------------------------------------------------------------------------
# split_words


@pytest.mark.parametrize(
    "text, words",
    [
        ("Hello, world!", ["Hello", ",", "world", "!"]),
        (
            "@paulwalk loves #NYC: see http://t.co/abc.",
            ["@paulwalk", "loves", "#NYC", ":", "see", "http://t.co/abc", "."],
        ),
        ("(www.example.org/a?b=1)", ["(", "www.example.org/a?b=1", ")"]),
        ("Paul's car isn't U.S. e-mail 1,000.50", ["Paul", "'s", "car", "isn't", "U.S", ".", "e-mail", "1,000.50"]),
        (
            "mail john.doe+x@mail.co.uk. wait...a@b.org",
            ["mail", "john.doe+x@mail.co.uk", ".", "wait", "...", "a@b.org"],
        ),
        (
            "Zürich naïve हिन्दी Cafe\u0301 Wiki\u00adpedia",
            ["Zürich", "naïve", "हिन्दी", "Cafe\u0301", "Wiki\u00adpedia"],
        ),
        ("I ❤️ 👨\u200d👩\u200d👧 🇫🇷! 👍🏽", ["I", "❤️", "👨\u200d👩\u200d👧", "🇫🇷", "!", "👍🏽"]),
        ("wait... what?!!", ["wait", "...", "what", "?", "!!"]),
        ("a\tb\nc  d\u200be\u00a0f\r\n", ["a", "b", "c", "d", "e", "f"]),
        ("", []),
        (" \t\n", []),
    ],
)
def test_split_words(text, words):
    split = split_words(text)
    assert [w for w, _, _ in split] == words
    assert all(text[start:end] == w for w, start, end in split)


def test_split_words_is_reversible_on_random_text():
    alphabet = list("abcXYZ019 ,.'’-@#:/\t\n") + [
        "é",
        "e\u0301",
        "ß",
        "中",
        "😀",
        "\u200b",
        "\u00a0",
        "\u200d",
        "🏽",
        "\u0000",
    ]
    rng = random.Random(0)
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(40)))
        split = split_words(text)
        covered = set()
        previous_end = 0
        for word, start, end in split:
            assert text[start:end] == word and word and start >= previous_end
            covered.update(range(start, end))
            previous_end = end
        # Only separators are left out: whitespace and invisible format characters.
        left_out = "".join(c for i, c in enumerate(text) if i not in covered)
        assert all(c.isspace() or c in "\u200b\u200d" for c in left_out), (text, left_out)


# --------------------------------------------------------------------------------------------
# NerPredictor


def test_predict_takes_texts_and_token_lists_alike(predictor):
    text = "mary  lives in paris ."
    tokens = ["bob", "works", "at", "nasa", "in", "oslo", "."]
    by_text, by_tokens = predictor.predict([text, tokens])
    assert [(e["type"], e["text"], e["start"], e["end"]) for e in by_text["entities"]] == [
        ("PER", "mary", 0, 4),
        ("LOC", "paris", 15, 20),
    ]  # character offsets for a text
    assert [(e["type"], e["text"], e["start"], e["end"]) for e in by_tokens["entities"]] == [
        ("PER", "bob", 0, 1),
        ("ORG", "nasa", 3, 4),
        ("LOC", "oslo", 5, 6),
    ]  # word offsets for a token list
    assert by_tokens["words"] == tokens and len(by_tokens["tags"]) == len(tokens)
    assert predictor.predict([text], documents=["d"]) == predictor.predict_document([text])
    assert predictor.predict([tokens]) == predictor.predict_tokens([tokens])
    with pytest.raises(RequestError, match="1 document ids for 2 sentences"):
        predictor.predict([text, tokens], documents=["d"])


def test_predict_texts_finds_entities_with_offsets(predictor):
    # Each text is a sentence of the synthetic corpus' kind (the tiny model has seen no text with two), with
    # irregular spacing and punctuation attached to words.
    texts = ["John lives in  Paris.", "Mary works at NASA in Rome today."]
    results = predictor.predict_texts(texts)
    found = [[(e["type"], e["text"]) for e in result["entities"]] for result in results]
    assert found == [[("PER", "John"), ("LOC", "Paris")], [("PER", "Mary"), ("ORG", "NASA"), ("LOC", "Rome")]]
    for text, result in zip(texts, results):
        for entity in result["entities"]:
            assert text[entity["start"] : entity["end"]] == entity["text"]
            assert 0.0 < entity["score"] <= 1.0
        assert result["words"] == [w for w, _, _ in split_words(text)]
        assert len(result["tags"]) == len(result["words"])
    assert predictor.max_length == 32 and predictor.window_overlap == 8 and predictor.scheme == "IOB2"  # recipe.yaml


def test_multi_word_entity_score_is_the_mean_of_its_words(predictor):
    (result,) = predictor.predict_texts(["alice bob visited the oslo ."])
    (tagged,) = predictor.predict_words([result["words"]])
    person = result["entities"][0]
    assert (person["type"], person["text"]) == ("PER", "alice bob")
    assert person["score"] == pytest.approx((tagged[0][1] + tagged[1][1]) / 2)


def test_empty_texts_keep_their_position(predictor):
    results = predictor.predict_texts(["", "john lives in paris .", " \t\n"])
    assert results[0] == {"entities": [], "words": [], "tags": []} == results[2]
    assert [e["type"] for e in results[1]["entities"]] == ["PER", "LOC"]
    assert predictor.predict_texts([]) == [] and predictor.predict_words([[]]) == [[]]


def test_batching_and_padding_do_not_change_predictions(predictor):
    texts = ["john lives in paris .", "mary works at google in berlin today .", "carol dave visited the rome .", "x"]
    together = predictor.predict_texts(texts)
    alone = [predictor.predict_texts([t])[0] for t in texts]
    for a, b in zip(together, alone):
        assert a["tags"] == b["tags"]
        # Together, the windows are packed into one row: float sums in another order, equal to 1e-4.
        assert [e["score"] for e in a["entities"]] == pytest.approx([e["score"] for e in b["entities"]], abs=1e-4)


def test_long_text_is_windowed_and_every_word_tagged(predictor):
    from nertune.data.align import encode_examples

    sentence = "john lives in paris . mary works at nasa in rome today ."
    text = " ".join([sentence] * 12)
    words = [w for w, _, _ in split_words(text)]
    assert (
        len(encode_examples([words], predictor.tokenizer, predictor.max_length, predictor.window_overlap)["input_ids"])
        > 5
    )
    (result,) = predictor.predict_texts([text])
    assert result["words"] == words and len(result["tags"]) == len(words)
    expected = {"john": "PER", "mary": "PER", "paris": "LOC", "rome": "LOC", "nasa": "ORG"}
    types = [tag.partition("-")[2] or "O" for tag in result["tags"]]
    right = sum(types[i] == expected.get(w, "O") for i, w in enumerate(words))
    # Windows cut sentences in the middle, which this tiny model never saw: most, not all, words are right.
    assert right / len(words) > 0.9


def test_any_text_gets_one_tag_per_word(predictor):
    alphabet = list("john paris. \t\n@#'") + ["é", "中", "😀", "👨\u200d👩", "\u200b", "\u0000", "\ufffd", "x" * 300]
    rng = random.Random(1)
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(60))) for _ in range(40)]
    for text, result in zip(texts, predictor.predict_texts(texts)):
        assert result["words"] == [w for w, _, _ in split_words(text)] and len(result["tags"]) == len(result["words"])
        assert all(text[e["start"] : e["end"]] == e["text"] for e in result["entities"])


def test_words_that_tokenize_to_nothing_still_get_a_tag(predictor):
    tagged = predictor.predict_words([["john", "\u200b", "lives", "in", "paris"], []])
    assert [len(t) for t in tagged] == [5, 0]
    assert tagged[0][0][0] == "B-PER" and tagged[0][4][0] == "B-LOC"


def test_agrees_with_transformers_pipeline(random_model_dir, trained_model_dir, tiny_model_dir):
    """Same entities (type, start, end) and scores as `pipeline(aggregation_strategy="first")`.

    The texts are single-space separated words without punctuation, so both splitters see the same
    words; they include words of several sub-tokens (parisian) and unknown words ([UNK]). The pipeline
    groups an I-X after O (or after another type) as a new entity, as `tags_to_spans` reads it, so
    even the random head's invalid sequences agree; only IOB2 models compare (the pipeline does not
    know E-/S- prefixes).
    """
    from transformers import pipeline

    rng = random.Random(0)
    vocab = (
        "john mary Alice paris London berlin google nasa lives in works at the a and parisian "
        "londoners visited xyzzy Quux rome"
    ).split()
    texts = [" ".join(rng.choice(vocab) for _ in range(rng.randint(1, 12))) for _ in range(60)]
    for model_dir in (random_model_dir, trained_model_dir):
        predictor = NerPredictor.from_pretrained(model_dir, precision="fp32")
        predictor.head.temperature = None  # pipeline() knows no calibration (config.json's nertune.calibration)
        ours = predictor.predict_texts(texts)
        reference = pipeline("token-classification", model=str(model_dir), aggregation_strategy="first", device=-1)
        theirs = reference(texts)
        for text, a, b in zip(texts, ours, theirs):
            assert [(e["type"], e["start"], e["end"]) for e in a["entities"]] == [
                (e["entity_group"], e["start"], e["end"]) for e in b
            ], text
            assert [e["score"] for e in a["entities"]] == pytest.approx([float(e["score"]) for e in b], abs=1e-5)
    # The random head does produce the corner case: a word's first sub-token tagged I-X after O.
    raw = pipeline("token-classification", model=str(random_model_dir), device=-1)(texts)
    first_subtokens = [[e["entity"] for e in row if not e["word"].startswith("##")] for row in raw]
    assert any(
        tag.startswith("I-") and (i == 0 or row[i - 1] == "O") for row in first_subtokens for i, tag in enumerate(row)
    )


def test_from_pretrained_errors(tmp_path, tiny_model_dir, random_model_dir):
    with pytest.raises(FileNotFoundError, match="not found"):
        NerPredictor.from_pretrained(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="neither config.json"):
        NerPredictor.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="no NER labels"):
        NerPredictor.from_pretrained(tiny_model_dir)  # a plain encoder
    with pytest.raises(ValueError, match="fp16 needs a CUDA"):
        NerPredictor.from_pretrained(random_model_dir, device="cpu", precision="fp16")


def test_scheme_from_labels_without_recipe(tmp_path, tiny_model_dir, random_model_dir):
    bioes = ["O", "B-PER", "I-PER", "E-PER", "S-PER"]
    predictor = NerPredictor.from_pretrained(random_head_model(tmp_path, tiny_model_dir, bioes))
    assert predictor.scheme == "BIOES" and predictor.max_length == 128 and predictor.window_overlap == 32
    results = predictor.predict_words([["john", "mary", "visited", "paris"]])
    from nertune.schemes import is_valid_sequence

    assert is_valid_sequence([tag for tag, _ in results[0]], "BIOES")
    assert NerPredictor.from_pretrained(random_model_dir).scheme == "IOB2"


# --------------------------------------------------------------------------------------------
# nertune predict


def run_cli(capsys, *argv):
    code = main(["predict", *map(str, argv)])
    return code, capsys.readouterr()


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_predict_text_file_to_jsonl(tmp_path, trained_model_dir, capsys):
    source = tmp_path / "docs.txt"
    source.write_text("John lives in Paris.\n\n  \nMary works at NASA in Rome today.", encoding="utf-8")
    code, _ = run_cli(capsys, trained_model_dir, "--input", source, "--output", tmp_path / "out.jsonl")
    assert code == 0
    results = read_jsonl(tmp_path / "out.jsonl")
    assert len(results) == 4 and results[1]["entities"] == [] == results[2]["entities"]
    assert [e["text"] for e in results[0]["entities"]] == ["John", "Paris"]
    assert [e["text"] for e in results[3]["entities"]] == ["Mary", "NASA", "Rome"]


def test_predict_jsonl_keeps_ids_and_accepts_tokens(tmp_path, trained_model_dir, capsys):
    source = tmp_path / "in.jsonl"
    source.write_text(
        '{"id": "a", "text": "john lives in paris ."}\n\n{"tokens": ["mary", "works", "at", "nasa"]}\n',
        encoding="utf-8",
    )
    code, _ = run_cli(
        capsys, trained_model_dir, "--input", source, "--output", tmp_path / "out.json", "--rows-per-pass", "1"
    )
    assert code == 0
    first, second = read_jsonl(tmp_path / "out.json")
    assert first["id"] == "a" and "id" not in second
    assert second["words"] == ["mary", "works", "at", "nasa"]
    # Token input: start/end are word indices.
    assert [(e["type"], e["start"], e["end"], e["text"]) for e in second["entities"]] == [
        ("PER", 0, 1, "mary"),
        ("ORG", 3, 4, "nasa"),
    ]


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", "not valid JSON"),
        ('["a list"]', "expected an object"),
        ('{"id": 1}', "exactly one of 'text' or 'tokens'"),
        ('{"text": "a", "tokens": ["a"]}', "exactly one of 'text' or 'tokens'"),
        ('{"text": 3}', "'text' must be a string"),
        ('{"tokens": "john"}', "'tokens' must be a list of strings"),
    ],
)
def test_predict_bad_jsonl_line_names_file_and_line(tmp_path, trained_model_dir, capsys, line, message):
    source = tmp_path / "bad.jsonl"
    source.write_text('{"text": "fine"}\n' + line + "\n", encoding="utf-8")
    code, captured = run_cli(capsys, trained_model_dir, "--input", source, "--output", tmp_path / "out.jsonl")
    assert code == 2
    assert f"{source}:2:" in captured.err and message in captured.err
    assert not (tmp_path / "out.jsonl").exists()


def test_predict_conll_appends_a_column(tmp_path, trained_model_dir, capsys):
    labelled = tmp_path / "gold.conll"
    labelled.write_text(
        "-DOCSTART-\tO\n\njohn\tB-PER\nlives\tO\nin\tO\nparis\tB-LOC\n\nmary\tB-PER\n", encoding="utf-8"
    )
    code, _ = run_cli(capsys, trained_model_dir, "--input", labelled, "--output", tmp_path / "pred.conll")
    assert code == 0
    assert (tmp_path / "pred.conll").read_text(encoding="utf-8").splitlines() == [
        "-DOCSTART-\tO\tO",
        "",
        "john\tB-PER\tB-PER",
        "lives\tO\tO",
        "in\tO\tO",
        "paris\tB-LOC\tB-LOC",
        "",
        "mary\tB-PER\tB-PER",
    ]

    unlabelled = tmp_path / "words.conll"
    unlabelled.write_text("john\nlives\nin\nparis\n\n\nmary\n", encoding="utf-8")
    code, _ = run_cli(capsys, trained_model_dir, "--input", unlabelled, "--output", tmp_path / "pred.txt")
    assert code == 0
    assert (tmp_path / "pred.txt").read_text(encoding="utf-8").splitlines() == [
        "john B-PER",
        "lives O",
        "in O",
        "paris B-LOC",
        "",
        "",
        "mary B-PER",
    ]

    code, _ = run_cli(capsys, trained_model_dir, "--input", unlabelled, "--output", tmp_path / "pred.jsonl")
    assert code == 0
    assert [(r["line"], r["tags"]) for r in read_jsonl(tmp_path / "pred.jsonl")] == [
        (1, ["B-PER", "O", "O", "B-LOC"]),
        (7, ["B-PER"]),
    ]


def test_predict_reads_a_txt_corpus_as_conll_like_training(tmp_path, trained_model_dir, capsys):
    from nertune.data import read_split_file

    source = tmp_path / "gold.txt"
    source.write_text("john B-PER\nlives O\n\nparis B-LOC\n", encoding="utf-8")
    assert read_split_file(source)["tokens"] == [["john", "lives"], ["paris"]]  # training reads it as CoNLL too
    code, _ = run_cli(capsys, trained_model_dir, "--input", source, "--output", tmp_path / "pred.txt")
    assert code == 0
    lines = (tmp_path / "pred.txt").read_text(encoding="utf-8").splitlines()
    assert [line.split()[:2] for line in lines] == [["john", "B-PER"], ["lives", "O"], [], ["paris", "B-LOC"]]
    assert all(len(line.split()) == 3 for line in lines if line)  # the predicted tag appended
    # An error in a file whose format was only sniffed says how it was read.
    code, out = run_cli(
        capsys, trained_model_dir, "--input", source, "--output", tmp_path / "x.jsonl", "--token-column", "3"
    )
    assert code == 2 and "gold.txt:1: no token column 3" in out.err
    assert "read as conll from its content" in out.err and "--format sets the format" in out.err


def test_predict_germeval_layout_token_column_and_comments(tmp_path, trained_model_dir, capsys, caplog):
    source = tmp_path / "germeval.tsv"
    source.write_text(
        "#\thttp://example.org/a [2009]\n1\tjohn\tB-PER\tO\n2\tlives\tO\tO\n3\tin\tO\tO\n"
        "4\tparis\tB-LOC\tO\n\n#\thttp://example.org/b\n1\tmary\tB-PER\tO\n",
        encoding="utf-8",
    )
    # Words in column 1 but no comment prefix: the comment lines are read as words, and the log says so.
    with caplog.at_level("WARNING"):
        code, _ = run_cli(
            capsys, trained_model_dir, "--input", source, "--output", tmp_path / "x.jsonl", "--token-column", "1"
        )
    assert code == 0
    assert "2 lines start with a '#' column (first: line 1)" in caplog.text and "--comment-prefix '#'" in caplog.text
    code, _ = run_cli(
        capsys,
        trained_model_dir,
        "--input",
        source,
        "--output",
        tmp_path / "pred.tsv",
        "--token-column",
        "1",
        "--comment-prefix",
        "#",
    )
    assert code == 0
    assert (tmp_path / "pred.tsv").read_text(encoding="utf-8").splitlines() == [
        "#\thttp://example.org/a [2009]",
        "1\tjohn\tB-PER\tO\tB-PER",
        "2\tlives\tO\tO\tO",
        "3\tin\tO\tO\tO",
        "4\tparis\tB-LOC\tO\tB-LOC",
        "",
        "#\thttp://example.org/b",
        "1\tmary\tB-PER\tO\tB-PER",
    ]
    # A line too short for the token column is an error naming it.
    source.write_text("1\tjohn\n2\n", encoding="utf-8")
    code, out = run_cli(
        capsys, trained_model_dir, "--input", source, "--output", tmp_path / "y.jsonl", "--token-column", "1"
    )
    assert code == 2 and "germeval.tsv:2: no token column 1 in '2' (1 columns; --token-column sets it)" in out.err


def test_predict_text_to_conll_with_explicit_formats(tmp_path, trained_model_dir, capsys):
    source = tmp_path / "docs.data"
    source.write_text("John lives in Paris.\n", encoding="utf-8")
    code, _ = run_cli(
        capsys,
        trained_model_dir,
        "--input",
        source,
        "--format",
        "text",
        "--output",
        tmp_path / "out.data",
        "--output-format",
        "conll",
    )
    assert code == 0
    assert (tmp_path / "out.data").read_text(encoding="utf-8") == "John\tB-PER\nlives\tO\nin\tO\nParis\tB-LOC\n.\tO\n\n"


def test_predict_errors_are_one_line(tmp_path, trained_model_dir, capsys):
    source = tmp_path / "docs.txt"
    source.write_text("john\n", encoding="utf-8")
    code, captured = run_cli(capsys, tmp_path / "no-model", "--input", source, "--output", tmp_path / "o.jsonl")
    assert code == 2 and "model directory not found" in captured.err and "Traceback" not in captured.err
    code, captured = run_cli(
        capsys, trained_model_dir, "--input", tmp_path / "none.txt", "--output", tmp_path / "o.jsonl"
    )
    assert code == 2 and "input file not found" in captured.err
    code, captured = run_cli(capsys, trained_model_dir, "--input", source, "--output", tmp_path / "o.txt")
    assert code == 2 and "--output-format" in captured.err


def test_int8_cpu_option_keeps_the_entities(trained_model_dir):
    sentences = [["bob", "works", "at", "nasa", "in", "oslo", "."], ["mary", "alice", "visited", "the", "rome", "."]]
    fp32 = NerPredictor.from_pretrained(trained_model_dir, precision="fp32").predict_words(sentences)
    int8_predictor = NerPredictor.from_pretrained(trained_model_dir, precision="int8")
    assert any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in int8_predictor.model.modules())
    int8 = int8_predictor.predict_words(sentences)
    assert [[t for t, _ in s] for s in int8] == [[t for t, _ in s] for s in fp32]


@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("eng.testb", "-DOCSTART- -X- -X- O\n\nEU NNP I-NP I-ORG\nrejects VBZ I-VP O\n", "conll"),
        ("wnut.dev", "@john\tO\nParis\tB-location\n\nok\tO\n", "conll"),
        ("notes.data", "John lives in Paris .\nMary works at NASA\n", "text"),
        ("records.data", '{"text": "John lives in Paris"}\n', "jsonl"),
        ("tweets.txt", "Paris\tB-LOC\n", "conll"),  # .txt is read by its content, as in training
        ("tweets.txt", "Paris is nice\n", "text"),
        ("words.conll", "Paris is nice\n", "conll"),  # a CoNLL or JSON extension wins over the content
    ],
)
def test_input_format_from_content_when_the_extension_does_not_tell(tmp_path, name, content, expected):
    from nertune.data import prediction_input_format

    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    assert prediction_input_format(path, None).name == expected


def test_conll_layout_defaults_come_from_the_model_config(trained_model_dir):
    from nertune.inference.files import _conll_layout
    from nertune.model.rundir import RunDir
    from nertune.model.settings import ModelSettings

    saved = RunDir.load(trained_model_dir).settings  # written from the training recipe's data section
    assert (saved.token_column, saved.comment_prefix, saved.delimiter) == (0, None, None)
    settings = ModelSettings(token_column=1, comment_prefix="#", delimiter="\t")
    layout = _conll_layout(settings, None, None)
    assert (layout.token_column, layout.comment_prefix, layout.delimiter) == (1, "#", "\t")
    layout = _conll_layout(settings, 0, "##")  # the command line wins
    assert (layout.token_column, layout.comment_prefix) == (0, "##")


def test_predict_latin1_input_with_encoding(tmp_path, trained_model_dir, capsys):
    source = tmp_path / "latin1.conll"
    source.write_bytes(b"john\nlives\nin\nparis\n\nm\xe9ry\n")
    code, out = run_cli(capsys, trained_model_dir, "--input", source, "--output", tmp_path / "out.jsonl")
    assert code == 2 and "latin1.conll:6: not valid utf-8" in out.err and "--encoding sets the input's" in out.err
    code, _ = run_cli(
        capsys, trained_model_dir, "--input", source, "--output", tmp_path / "out.jsonl", "--encoding", "latin-1"
    )
    assert code == 0
    results = read_jsonl(tmp_path / "out.jsonl")
    assert results[0]["tags"] == ["B-PER", "O", "O", "B-LOC"] and results[1]["words"] == ["m\u00e9ry"]
