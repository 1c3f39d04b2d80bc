"""Chinese end to end (issue 11): character-per-line BMES files (CRLF) and CLUENER2020 JSON read with no
conversion script, trained on by a tiny BERT whose vocabulary holds the corpus' characters, predicted and
served on raw Chinese text with character offsets; GBK files; lines of invisible characters."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import pytest

from nertune import data
from nertune.cli import main
from nertune.data import DataError

from .helpers import build_tiny_model, data_cfg, running_server, write

PERSONS = ["张伟", "王芳", "李娜", "刘洋", "陈静", "杨磊", "赵敏", "孙悦"]
PLACES = ["北京", "上海", "广州", "深圳", "杭州", "成都"]
ORGS = ["腾讯集团", "清华大学", "招商银行", "小米科技"]
# (template, entity types in order): "{}" holds an entity; the other characters never occur in one.
TEMPLATES = [
    ("{}住在{}。", ("NAME", "LOC")),
    ("{}在{}工作。", ("NAME", "ORG")),
    ("{}和{}去了{}。", ("NAME", "NAME", "LOC")),
    ("{}位于{}。", ("ORG", "LOC")),
    ("今天{}访问了{}。", ("NAME", "ORG")),
]
FILLER = "".join(dict.fromkeys(c for template, _ in TEMPLATES for c in template.replace("{}", "")))
CHOICES = {"NAME": PERSONS, "LOC": PLACES, "ORG": ORGS}


def make_sentences(n: int, seed: int) -> list[tuple[str, list[tuple[int, int, str]]]]:
    """`(text, [(start, end_exclusive, type), ...])` from the templates; entity types follow from the characters."""
    rng = random.Random(seed)
    sentences = []
    for _ in range(n):
        template, types = rng.choice(TEMPLATES)
        names = rng.sample(PERSONS, types.count("NAME"))
        text, spans, pieces = "", [], template.split("{}")
        for piece, type_ in zip(pieces, types):
            entity = names.pop() if type_ == "NAME" else rng.choice(CHOICES[type_])
            text += piece
            spans.append((len(text), len(text) + len(entity), type_))
            text += entity
        sentences.append((text + pieces[-1], spans))
    return sentences


def bmes_tags(text: str, spans) -> list[str]:
    tags = ["O"] * len(text)
    for start, end, type_ in spans:
        if end - start == 1:
            tags[start] = f"S-{type_}"
            continue
        tags[start:end] = [f"B-{type_}"] + [f"M-{type_}"] * (end - start - 2) + [f"E-{type_}"]
    return tags


def write_char_bmes(path: Path, sentences, encoding: str = "utf-8") -> Path:
    """The Resume/MSRA layout: `character tag` per line, a blank line after each sentence, CRLF."""
    lines = []
    for text, spans in sentences:
        lines += [f"{char} {tag}" for char, tag in zip(text, bmes_tags(text, spans))] + [""]
    path.write_bytes("\r\n".join(lines).encode(encoding))
    return path


def write_cluener(path: Path, sentences, labelled: bool = True) -> Path:
    """CLUENER2020's layout: one JSON object a line in a .json file; `label` maps type -> mention ->
    [[start, end_inclusive], ...]; the test split has an `id` and no `label`."""
    with open(path, "w", encoding="utf-8") as f:
        for index, (text, spans) in enumerate(sentences):
            record: dict = {"id": index, "text": text} if not labelled else {"text": text, "label": {}}
            if labelled:
                for start, end, type_ in spans:
                    record["label"].setdefault(type_, {}).setdefault(text[start:end], []).append([start, end - 1])
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


def test_templates_keep_entity_and_filler_characters_apart():
    entity_chars = set("".join(PERSONS + PLACES + ORGS))
    assert not entity_chars & set(FILLER)


def test_cluener_json_and_char_bmes_give_the_same_dataset(tmp_path):
    sentences = make_sentences(40, seed=7)
    sentences.append(("张伟和李娜去了北京。", [(0, 2, "NAME"), (3, 5, "NAME"), (7, 9, "LOC")]))  # one mention twice
    sentences.append(("赵敏说赵敏在上海。", [(0, 2, "NAME"), (3, 5, "NAME"), (6, 8, "LOC")]))
    bmes = write_char_bmes(tmp_path / "train.char.bmes", sentences)
    cluener = write_cluener(tmp_path / "train.json", sentences)
    assert '"赵敏": [[0, 1], [3, 4]]' in cluener.read_text(encoding="utf-8").splitlines()[-1]
    from_bmes, scheme_bmes = data.load_splits(data_cfg(train_file=str(bmes), validation_ratio=0.0, test_ratio=0.0))
    from_json, scheme_json = data.load_splits(data_cfg(train_file=str(cluener), validation_ratio=0.0, test_ratio=0.0))
    assert (scheme_bmes, scheme_json) == ("BMES", "IOB2")
    assert from_bmes["train"]["tokens"] == from_json["train"]["tokens"] == [list(text) for text, _ in sentences]
    assert from_bmes["train"]["ner_tags"] == from_json["train"]["ner_tags"]
    assert from_json["train"]["ner_tags"][-1] == [
        "B-NAME",
        "I-NAME",
        "O",
        "B-NAME",
        "I-NAME",
        "O",
        "B-LOC",
        "I-LOC",
        "O",
    ]
    assert from_json["train"]["line"][:2] == [1, 2]


def test_cluener_test_split_without_labels_is_predict_input(tmp_path):
    path = write_cluener(tmp_path / "test.json", make_sentences(3, seed=1), labelled=False)
    fmt, records, _ = data.read_prediction_input(path)
    assert fmt == "jsonl" and [r.id for r in records] == [0, 1, 2] and records[0].text == make_sentences(3, 1)[0][0]
    with pytest.raises(DataError, match=r"test\.json:1: a record with 'text' needs its entity spans"):
        data.read_split_file(path)


@pytest.mark.parametrize(
    "bad_line, line_no, what",
    [
        ("S-NAME", 1, "a tag without its character"),
        ("B-LOC", 5, "a tag without its character"),
        ("北", 5, "a character without its tag"),
        ("。", 9, "a character without its tag"),
    ],
)
def test_every_malformed_bmes_line_names_file_and_line(tmp_path, bad_line, line_no, what):
    lines = (
        write_char_bmes(tmp_path / "ok.char.bmes", [("张伟住在北京。", [(0, 2, "NAME"), (4, 6, "LOC")])] * 2)
        .read_bytes()
        .decode()
        .split("\r\n")
    )
    lines[line_no - 1] = bad_line
    path = write(tmp_path, "train.char.bmes", "\r\n".join(lines))
    with pytest.raises(DataError) as err:
        data.read_split_file(path)
    assert str(err.value).startswith(f"{path}:{line_no}: expected at least 2 columns"), what
    assert repr(bad_line) in str(err.value) and err.value.line == line_no


def test_gbk_file_reads_with_data_encoding_and_utf8_error_says_gb18030(tmp_path):
    sentences = make_sentences(6, seed=3)
    path = write_char_bmes(tmp_path / "train.char.bmes", sentences, encoding="gbk")
    with pytest.raises(
        DataError,
        match=r"train\.char\.bmes:\d+: not valid utf-8 .*looks like GB18030/GBK: "
        r"set data\.encoding=gb18030$",
    ):
        data.read_split_file(path)
    for encoding in ("gb18030", "gbk"):
        assert data.check_encoding(encoding) == encoding
        splits, _ = data.load_splits(
            data_cfg(train_file=str(path), encoding=encoding, validation_ratio=0.0, test_ratio=0.0)
        )
        assert splits["train"]["tokens"] == [list(text) for text, _ in sentences]


def test_latin1_file_keeps_the_latin1_hint(tmp_path):
    # "été" in Latin-1 also decodes as GBK (E9 74 is a GBK character), but is not Chinese.
    path = write(tmp_path, "de.conll", "Köln B-LOC\nund O\nété O\n".encode("latin-1"))
    with pytest.raises(DataError) as err:
        data.read_split_file(path)
    assert "set data.encoding (e.g. latin-1" in str(err.value) and "GB18030" not in str(err.value)


@pytest.mark.parametrize("last_line", ["\u200b", "\ufeff", "\u200b\u200c\u200d\u2060 ", "\ufeff\u200b\r"])
def test_wnut_dev_file_ending_in_an_invisible_line_loads(tmp_path, caplog, last_line):
    # A published Twitter NER dev file ends with such a line; it used to fail as a line without a tag.
    text = "@paul\tO\nlol\tO\n\nEmpire\tB-location\nState\tI-location\n\n" + last_line
    path = write(tmp_path, "wnut17.dev", text)
    with caplog.at_level(logging.WARNING, logger="nertune.data.lines"):
        ds = data.read_split_file(path)
    assert ds["tokens"] == [["@paul", "lol"], ["Empire", "State"]]
    assert f"{path}:7: a line of invisible characters only" in caplog.text


def test_invisible_lines_inside_a_file_end_sentences_in_every_reader(tmp_path, caplog):
    conll = write(tmp_path, "a.conll", "叶 S-NAME\n\u200b\u200b\n北 B-LOC\n京 E-LOC\n")
    assert data.read_split_file(conll)["tokens"] == [["叶"], ["北", "京"]]
    jsonl = write(tmp_path, "a.jsonl", '{"text": "北京"}\n\u2060\n{"text": "上海"}\n')
    assert [r.text for r in data.read_prediction_input(jsonl)[1]] == ["北京", "上海"]
    text = write(tmp_path, "a.txt", "北京\n\ufeff\n上海\n")
    with caplog.at_level(logging.WARNING, logger="nertune.data.lines"):
        assert [r.text for r in data.read_prediction_input(text, "text")[1]] == ["北京", "", "上海"]
    assert f"{text}:2: a line of invisible characters only (U+FEFF)" in caplog.text


def test_bom_glued_to_a_token_is_removed_with_a_warning(tmp_path, caplog):
    # Two files concatenated: the second one's byte-order mark sticks to its first token.
    path = write(tmp_path, "cat.conll", "\ufeffEU\tB-ORG\nrejects\tO\n\n\ufeffGerman\tB-MISC\ncall\tO\n")
    with caplog.at_level(logging.WARNING, logger="nertune.data.lines"):
        ds = data.read_split_file(path)
    assert ds["tokens"] == [["EU", "rejects"], ["German", "call"]]
    assert f"{path}:4: removed a byte-order mark (U+FEFF) glued to a token" in caplog.text
    assert f"{path}:1:" not in caplog.text  # the file's own byte-order mark is no news


def test_a_tagged_invisible_token_is_still_a_word(tmp_path):
    path = write(tmp_path, "t.conll", "hi\tO\n\u200b\tO\nyou\tO\n")
    assert data.read_split_file(path)["tokens"] == [["hi", "\u200b", "you"]]


@pytest.mark.parametrize(
    "tokens, language",
    [
        ([list("张伟住在北京。"), ["DOTA2", "比", "赛"]], "zh"),
        ([["東", "京", "に", "住", "ん", "で", "い", "ま", "す"]], "ja"),
        ([["서울에", "삽니다"]], "ko"),
        ([["กรุงเทพ", "มหานคร"]], "th"),
        ([["John", "lives", "in", "Paris"]], None),
        ([["123", "!"]], None),
    ],
)
def test_detect_language_by_script(tokens, language):
    assert data.detect_language(tokens) == language


# --- training, predict and serve on a tiny Chinese BERT -------------------------------------------------


@pytest.fixture(scope="module")
def chinese_model_dir(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide BERT whose WordPiece vocabulary holds every character of the corpus."""
    from transformers import BertTokenizer

    directory = tmp_path_factory.mktemp("tiny-bert-zh")
    chars = dict.fromkeys("".join(PERSONS + PLACES + ORGS) + FILLER)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars]
    BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}).save_pretrained(directory)
    build_tiny_model(seed=0, vocab_size=len(vocab), max_position_embeddings=64).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def chinese_run(tmp_path_factory, chinese_model_dir) -> tuple[Path, dict]:
    """`run_training` on train/dev/test.char.bmes (CRLF, character per line): the run dir and its metrics."""
    from nertune.recipe.schema import load_recipe
    from nertune.training.run import run_training

    root = tmp_path_factory.mktemp("zh-run")
    files = {
        name: write_char_bmes(root / f"{name}.char.bmes", make_sentences(n, seed))
        for name, n, seed in (("train", 300, 1), ("dev", 40, 2), ("test", 40, 3))
    }
    recipe = load_recipe(
        None,
        [
            f"model_name_or_path={chinese_model_dir}",
            f"output_dir={root / 'run'}",
            f"data.train_file={files['train']}",
            f"data.validation_file={files['dev']}",
            f"data.test_file={files['test']}",
            "learning_rate=5e-3",
            "num_train_epochs=5",
            "warmup_ratio=0",
            "per_device_train_batch_size=16",
            "eval_strategy=no",
            "save_strategy=no",
            "report_to=none",
            "precision=fp32",
            "max_length=32",
            "window_overlap=8",
        ],
    )
    return root / "run", run_training(recipe)


@pytest.mark.slow
def test_training_on_char_bmes_learns_and_the_card_says_chinese(chinese_run):
    run_dir, metrics = chinese_run
    assert metrics["source_scheme"] == "BMES" and metrics["train_scheme"] == "IOB2"
    assert set(metrics["labels"]) == {"O", "B-NAME", "I-NAME", "B-LOC", "I-LOC", "B-ORG", "I-ORG"}
    assert metrics["test_f1"] > 0.8, metrics
    assert metrics["language"] == "zh" and json.loads((run_dir / "metrics.json").read_text())["language"] == "zh"
    card = (run_dir / "README.md").read_text(encoding="utf-8")
    assert "\nlanguage: zh\n" in card.split("---")[1]


TEXT = "今天张伟访问了腾讯集团。"
EXPECTED = [("NAME", "张伟", 2, 4), ("ORG", "腾讯集团", 7, 11)]


def entity_tuples(result: dict) -> list[tuple]:
    return [(e["type"], e["text"], e["start"], e["end"]) for e in result["entities"]]


@pytest.mark.slow
def test_predict_raw_chinese_text_with_character_offsets(chinese_run, tmp_path, capsys):
    run_dir, _ = chinese_run
    texts = [TEXT, "王芳和李娜去了成都。"]
    source = write(tmp_path, "texts.txt", "\n".join(texts) + "\n")
    assert main(["predict", str(run_dir), "--input", str(source), "--output", str(tmp_path / "out.jsonl")]) == 0
    results = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert entity_tuples(results[0]) == EXPECTED
    assert results[0]["words"] == list(TEXT)
    assert entity_tuples(results[1]) == [("NAME", "王芳", 0, 2), ("NAME", "李娜", 3, 5), ("LOC", "成都", 7, 9)]
    for text, result in zip(texts, results):
        assert all(text[e["start"] : e["end"]] == e["text"] for e in result["entities"])


@pytest.mark.slow
def test_predict_gbk_text_with_encoding_option(chinese_run, tmp_path, capsys):
    run_dir, _ = chinese_run
    source = write(tmp_path, "gbk.txt", f"{TEXT}\n".encode("gbk"))
    output = tmp_path / "out.jsonl"
    assert main(["predict", str(run_dir), "--input", str(source), "--output", str(output)]) == 2
    assert "looks like GB18030/GBK: --encoding gb18030" in capsys.readouterr().err
    assert main(["predict", str(run_dir), "--input", str(source), "--output", str(output), "--encoding", "gbk"]) == 0
    assert entity_tuples(json.loads(output.read_text(encoding="utf-8"))) == EXPECTED


@pytest.mark.slow
def test_predict_cluener_test_json_keeps_ids(chinese_run, tmp_path):
    run_dir, _ = chinese_run
    source = write_cluener(tmp_path / "test.json", [(TEXT, []), ("成都", [])], labelled=False)
    assert main(["predict", str(run_dir), "--input", str(source), "--output", str(tmp_path / "out.jsonl")]) == 0
    results = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in results] == [0, 1] and entity_tuples(results[0]) == EXPECTED


@pytest.mark.slow
def test_serve_chinese_text(chinese_run, tmp_path):
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("starlette")
    run_dir, _ = chinese_run
    with running_server(run_dir, tmp_path / "server.log") as url:
        response = httpx.post(f"{url}/predict", json={"text": TEXT}, timeout=30)
        assert response.status_code == 200, response.text
        assert entity_tuples(response.json()) == EXPECTED
        batch = httpx.post(f"{url}/predict", json={"texts": ["杨磊住在深圳。", ""]}, timeout=30).json()["results"]
    assert [entity_tuples(r) for r in batch] == [[("NAME", "杨磊", 0, 2), ("LOC", "深圳", 4, 6)], []]


def test_zh_recipe_reads_char_bmes_and_cluener_files_given_on_the_command_line(tmp_path):
    from nertune.recipe.schema import load_recipe

    recipe_file = Path(__file__).resolve().parents[1] / "recipes" / "zh-bert-base-chinese.yaml"
    recipe = load_recipe(recipe_file)
    assert recipe.model_name_or_path == "bert-base-chinese" and recipe.data.train_file.endswith("train.char.bmes")
    assert recipe.learning_rate in (3e-5, 5e-5) and recipe.per_device_train_batch_size == 32
    bmes = write_char_bmes(tmp_path / "train.char.bmes", make_sentences(20, seed=4))
    cluener = write_cluener(tmp_path / "dev.json", make_sentences(5, seed=5))
    recipe = load_recipe(
        recipe_file, [f"data.train_file={bmes}", f"data.validation_file={cluener}", f"data.test_file={cluener}"]
    )
    splits, source = data.load_splits(recipe.data)
    assert source == "BMES" and len(splits["validation"]) == 5
    assert data.detect_language(splits["train"]["tokens"]) == "zh"


@pytest.mark.slow
def test_card_of_an_english_run_states_no_language(trained_model_dir):
    import yaml

    from nertune.hub.modelcard import render_model_card

    assert json.loads((trained_model_dir / "metrics.json").read_text())["language"] is None
    assert "language" not in yaml.safe_load(render_model_card(trained_model_dir).split("---\n")[1])
