"""`nertune predict` at any size: streamed readers, document-preserving chunks over a stream, results written
in input order as they come, `--resume` after a SIGKILL, and several processes under `accelerate launch`."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nertune.cli import main
from nertune.data import DataError, InputRecord, iter_prediction_input
from nertune.inference.files import run_prediction
from nertune.inference.stream import JSONL_DOCUMENT_GAP, document_chunks, resume_point

from .helpers import CITIES, LABELS, ORGS, PERSONS, random_head_model, subprocess_env, two_process_launcher

WORDS = PERSONS + CITIES + ORGS + ["lives", "in", "works", "at", "the", "."]


def _sentence(i: int) -> list[str]:
    return [WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(3 + i % 5)]


def write_inputs(directory: Path, n: int) -> dict[str, Path]:
    """The same sentences as text, JSONL (documents interleaved within the gap, ids, tokens) and CoNLL
    (documents, comments, blank runs and a tail of blank/comment lines)."""
    text = directory / "in.txt"
    text.write_text("".join(" ".join(_sentence(i)) + ("\n\n" if i % 9 == 4 else "\n") for i in range(n)))
    records = [
        {"id": i, "document_id": f"d{i // 4}"}
        | ({"tokens": _sentence(i)} if i % 2 else {"text": " ".join(_sentence(i))})
        for i in range(n)
    ]
    records = [r for pair in zip(records[0::2], records[1::2]) for r in pair[::-1]]  # documents interleave
    jsonl = directory / "in.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in records))
    lines = []
    for i in range(n):
        if i % 10 == 0:
            lines += ["-DOCSTART-\tO", ""]
        if i % 7 == 3:
            lines.append("# a comment")
        lines += [f"{w}\tO" for w in _sentence(i)] + ([""] if i % 5 else ["", "  "])
    conll = directory / "in.conll"
    conll.write_text("\n".join(lines + ["# the end", ""]) + "\n")
    return {"text": text, "jsonl": jsonl, "conll": conll}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_model_dir):
    return random_head_model(tmp_path_factory.mktemp("stream-model"), tiny_model_dir, LABELS)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return write_inputs(tmp_path_factory.mktemp("stream-inputs"), 150)


# (input, output name): text -> JSONL, JSONL -> CoNLL words, CoNLL -> CoNLL with a tag column
CASES = [("text", "out.jsonl"), ("jsonl", "out.conll"), ("conll", "out.conll"), ("conll", "out.jsonl")]


# --------------------------------------------------------------------------------------------
# Streaming readers and chunks (no model)


def test_readers_stream_records_before_a_bad_line(tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "a"}\n{"tokens": ["b"]}\n{broken\n')
    fmt, records = iter_prediction_input(source)
    assert fmt == "jsonl"
    assert next(records).text == "a" and next(records).tokens == ["b"]  # read before line 3 is reached
    with pytest.raises(DataError, match=r"in\.jsonl:3: not valid JSON"):
        next(records)


def _records(document_ids: list[str]) -> list[InputRecord]:
    return [InputRecord(text=str(i), line=i + 1, document_id=d) for i, d in enumerate(document_ids)]


def test_chunks_never_split_a_document_and_keep_every_record():
    ids = ["a"] * 5 + [""] * 3 + ["b"] * 40 + ["c"] * 2 + [""]
    chunks = list(document_chunks(iter(_records(ids)), size=8))
    assert sorted(i for c in chunks for i, _ in c.records) == list(range(len(ids)))
    assert [c.number for c in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert len(chunk.records) <= 8 or {r.document_id for _, r in chunk.records} == {"b"}
    homes = {}
    for chunk in chunks:
        for _, record in chunk.records:
            if record.document_id:
                homes.setdefault(record.document_id, set()).add(chunk.number)
    assert all(len(numbers) == 1 for numbers in homes.values())


def test_jsonl_documents_may_interleave_within_the_gap_but_not_reappear_later(tmp_path):
    ids = ["a", "b", "a", "b", "c", "a"]
    chunks = list(document_chunks(iter(_records(ids)), size=100, document_gap=2))
    assert [[r.document_id for _, r in c.records] for c in chunks] == [["b", "b", "c", "a", "a", "a"]]
    late = ["a"] + ["x"] * 3 + ["a"]
    with pytest.raises(
        DataError,
        match=r"in\.jsonl:5: document_id 'a' reappears more than 2 records after its "
        r"record on line 1",
    ):
        list(document_chunks(iter(_records(late)), size=100, document_gap=2, path=tmp_path / "in.jsonl"))


def test_interleaved_document_error_before_the_model_loads(tmp_path, capsys):
    source = tmp_path / "in.jsonl"
    rows = [{"text": "a", "document_id": "first"}] + [{"text": "b"}] * (JSONL_DOCUMENT_GAP + 1)
    source.write_text("".join(json.dumps(r) + "\n" for r in rows + [{"text": "c", "document_id": "first"}]))
    code = main(["predict", str(tmp_path / "no-model"), "--input", str(source), "--output", str(tmp_path / "o.jsonl")])
    assert code == 2
    assert f"in.jsonl:{JSONL_DOCUMENT_GAP + 3}: document_id 'first' reappears" in capsys.readouterr().err
    assert not (tmp_path / "o.jsonl").exists()


def test_resume_point_keeps_complete_records_only(tmp_path):
    output = tmp_path / "out.conll"
    output.write_bytes(b"a\tO\nb\tO\n\nc\tO\n\nd\tO\ne")  # records of 3, 2 and 3 lines; the third is partial
    point = resume_point(output, [3, 2, 3])
    assert (point.records, point.offset) == (2, len(b"a\tO\nb\tO\n\nc\tO\n\n"))
    output.write_bytes(b"x\n" * 9)
    with pytest.raises(ValueError, match="has 9 lines, more than predicting this input writes \\(8\\)"):
        resume_point(output, [3, 2, 3])
    assert resume_point(tmp_path / "missing", [1]).records == 0


# --------------------------------------------------------------------------------------------
# Real predictions with a tiny model


@pytest.mark.slow
@pytest.mark.parametrize("kind, name", CASES)
def test_resume_after_a_cut_anywhere_gives_the_same_bytes(tmp_path, model_dir, inputs, kind, name):
    reference = tmp_path / f"ref-{name}"
    options = {"batch_size": 1, "comment_prefix": "#" if kind == "conll" else None}
    n = run_prediction(model_dir, inputs[kind], reference, **options)
    expected = reference.read_bytes()
    assert n == (167 if kind == "text" else 150)  # text: a blank line is an empty text
    if name.endswith(".jsonl"):
        assert len(expected.splitlines()) == n
    output = tmp_path / name
    for cut in (0, 1, len(expected) // 3, len(expected) // 2 + 7, len(expected) - 2, len(expected)):
        output.write_bytes(expected[:cut])
        run_prediction(model_dir, inputs[kind], output, resume=True, **options)
        assert output.read_bytes() == expected, cut
    output.write_bytes(b"stale\n")  # without --resume an existing output is overwritten
    run_prediction(model_dir, inputs[kind], output, **options)
    assert output.read_bytes() == expected


@pytest.mark.slow
@pytest.mark.parametrize("ending", ["\r", "\r\r\n"])
def test_other_line_endings_predict_and_resume_as_newlines_do(tmp_path, model_dir, inputs, ending):
    # CoNLL -> CoNLL copies every input line, the blank and comment lines after the last token too: the count
    # of those (`count_input_lines`) and the reader must agree on where lines end.
    options = {"batch_size": 4, "comment_prefix": "#"}
    reference = tmp_path / "ref.conll"
    run_prediction(model_dir, inputs["conll"], reference, **options)
    source = tmp_path / "in.conll"
    source.write_bytes(inputs["conll"].read_bytes().replace(b"\n", ending.encode()))
    output = tmp_path / "out.conll"
    assert run_prediction(model_dir, source, output, **options) == 150
    assert output.read_bytes() == reference.read_bytes()
    output.write_bytes(reference.read_bytes()[: len(reference.read_bytes()) // 2])
    run_prediction(model_dir, source, output, resume=True, **options)
    assert output.read_bytes() == reference.read_bytes()


@pytest.mark.slow
def test_sigkill_then_resume_gives_the_uninterrupted_output(tmp_path, model_dir):
    source = write_inputs(tmp_path, 3000)["text"]
    reference, output = tmp_path / "ref.jsonl", tmp_path / "out.jsonl"
    run_prediction(model_dir, source, reference, batch_size=1)
    command = [
        sys.executable,
        "-m",
        "nertune.cli",
        "predict",
        str(model_dir),
        "--input",
        str(source),
        "--output",
        str(output),
        "--rows-per-pass",
        "1",
    ]
    with open(tmp_path / "killed.log", "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=subprocess_env())
    deadline = time.monotonic() + 180
    while not (output.is_file() and output.stat().st_size > 2000):
        assert process.poll() is None, (tmp_path / "killed.log").read_text()
        assert time.monotonic() < deadline, "no output after 180 s"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    written = output.read_bytes()
    assert 0 < written.count(b"\n") < 3000, "the run finished before it was killed: use a larger input"
    assert reference.read_bytes().startswith(written.rsplit(b"\n", 1)[0])  # flushed in input order
    code = main(
        ["predict", str(model_dir), "--input", str(source), "--output", str(output), "--rows-per-pass", "1", "--resume"]
    )
    assert code == 0
    assert output.read_bytes() == reference.read_bytes()


@pytest.mark.slow
def test_two_processes_write_what_one_writes(tmp_path, model_dir, inputs):
    launcher = [sys.executable, "-m", *two_process_launcher(), "-m", "nertune.cli", "predict", str(model_dir)]
    for kind, name in (("conll", "out.conll"), ("jsonl", "out.jsonl")):
        reference, output = tmp_path / f"ref-{name}", tmp_path / name
        run_prediction(model_dir, inputs[kind], reference, batch_size=1, comment_prefix="#")
        result = subprocess.run(
            [
                *launcher,
                "--input",
                str(inputs[kind]),
                "--output",
                str(output),
                "--rows-per-pass",
                "1",
                "--comment-prefix",
                "#",
            ],
            env=subprocess_env(),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
        assert "world size 2" in result.stderr
        assert output.read_bytes() == reference.read_bytes(), kind
        assert sorted(p.name for p in tmp_path.iterdir() if ".part" in p.name) == []  # parts merged and removed
