"""`nertune predict`: reading a text, JSONL or CoNLL file, predicting it with a `NerPredictor`, writing results."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .config import RecipeError
from .data import (
    PREDICTION_INPUT_FORMATS,
    ConllLayout,
    InputRecord,
    format_from_extension,
    prediction_input_format,
    read_prediction_input,
)
from .errors import PathNotFoundError, RequestError
from .predictor import NerPredictor
from .rundir import load_run_recipe
from .words import split_words

logger = logging.getLogger(__name__)

INPUT_FORMATS = PREDICTION_INPUT_FORMATS
OUTPUT_FORMATS = ("jsonl", "conll")


def _output_format(path: Path, given: str | None, input_format: str) -> str:
    if given:
        return given
    suffix = path.suffix.lower()
    by_extension = format_from_extension(path)
    if by_extension == "json":
        return "jsonl"
    if by_extension == "conll" or (suffix == ".txt" and input_format == "conll"):
        return "conll"
    raise RequestError(f"cannot tell the output format from {path.name!r}: use a .jsonl or .conll file name, "
                     "or --output-format jsonl|conll")


def _result_record(record: InputRecord, result: dict[str, Any], input_format: str) -> dict[str, Any]:
    out: dict[str, Any] = {"id": record.id} if record.has_id else {}
    if input_format == "conll":
        out["line"] = record.line
    out.update(result)
    return out


def _write_conll(path: Path, records: list[InputRecord], results: list[dict], lines: list[str] | None,
                 layout: ConllLayout | None = None) -> None:
    with open(path, "w", encoding="utf-8") as f:
        if lines is not None:
            # CoNLL input: every line as it was, the predicted tag appended as a new last column.
            tags = {}
            for record, result in zip(records, results):
                tags.update(zip(record.token_lines, result["tags"]))
            for index, line in enumerate(lines):
                line = line.rstrip(" \t")
                if not line or (layout is not None and layout.is_comment(line)):
                    f.write(f"{line}\n")
                    continue
                delimiter = "\t" if "\t" in line else " "
                tag = tags.get(index, "O")  # -DOCSTART- lines get O, like their other columns
                f.write(f"{line}{delimiter}{tag}\n")
            return
        for result in results:
            if not result["words"]:
                continue  # an empty text has no line to write; JSONL output keeps its position
            f.writelines(f"{word}\t{tag}\n" for word, tag in zip(result["words"], result["tags"]))
            f.write("\n")


def run_prediction(model_dir: str | Path, input_path: str | Path, output_path: str | Path,
                   input_format: str | None = None, output_format: str | None = None, batch_size: int = 32,
                   device: str | None = None, precision: str = "auto", documents: bool = False,
                   token_column: int | None = None, comment_prefix: str | None = None,
                   encoding: str = "utf-8") -> int:
    """Predict every record of a text, JSONL or CoNLL file and write JSONL or CoNLL; returns the count.

    Formats default from the file names (input: .jsonl/.json, .conll/.tsv/.bio..., `.txt` and other names
    by their content, see `data.formats`; output: .jsonl/.json, .conll/.tsv/.bio..., or .txt for CoNLL input). JSONL output has one line per input
    record, in order, with its `id` when the input has one.
    Documents (context for a model trained with `context_size`): CoNLL `-DOCSTART-` lines, the JSONL
    `document_id` field, or, for text with `documents=True`, blocks of lines separated by blank lines.
    Text and CoNLL input are read in `encoding` (output is always UTF-8). CoNLL input is read with the
    training recipe's token column, delimiter and comment prefix unless
    `token_column`/`comment_prefix` say otherwise; comment lines are copied to CoNLL output unchanged.
    """
    from tqdm.auto import tqdm

    input_path, output_path = Path(input_path), Path(output_path)
    if not input_path.is_file():
        raise PathNotFoundError(f"input file not found: {input_path}")
    if output_path.resolve() == input_path.resolve():
        raise RequestError(f"--output {output_path} would overwrite the input")
    found = prediction_input_format(input_path, input_format, encoding=encoding,
                                    layout=ConllLayout(comment_prefix=comment_prefix))
    input_format = found.name
    output_format = _output_format(output_path, output_format, input_format)
    if input_format not in INPUT_FORMATS or output_format not in OUTPUT_FORMATS:
        raise RequestError(f"unknown format: input {input_format!r} (one of {INPUT_FORMATS}), "
                         f"output {output_format!r} (one of {OUTPUT_FORMATS})")
    # Read and check the whole input before loading the model: a bad line fails in a second.
    layout = _conll_layout(Path(model_dir), token_column, comment_prefix) if input_format == "conll" else None
    _, records, conll_lines = read_prediction_input(input_path, found, documents=documents, encoding=encoding,
                                                    layout=layout)

    predictor = NerPredictor.from_pretrained(model_dir, device=device, batch_size=batch_size, precision=precision)
    results: list = [None] * len(records)
    chunks = _document_chunks(records, max(1, batch_size) * 16)  # bounds memory on huge files, keeps batches full
    with tqdm(total=len(records), unit="record", desc="predict", disable=len(chunks) <= 1) as progress:
        for chunk in chunks:
            for i, result in zip(chunk, _predict_records(predictor, [records[i] for i in chunk])):
                results[i] = result
            progress.update(len(chunk))

    output_path.parent.mkdir(parents=True, exist_ok=True)
    if output_format == "conll":
        _write_conll(output_path, records, results, conll_lines, layout)
    else:
        with open(output_path, "w", encoding="utf-8") as f:
            for record, result in zip(records, results):
                f.write(json.dumps(_result_record(record, result, input_format), ensure_ascii=False) + "\n")
    logger.info("predicted %d records of %s -> %s (%s)", len(records), input_path, output_path, output_format)
    return len(records)


def _conll_layout(model_dir: Path, token_column: int | None, comment_prefix: str | None) -> ConllLayout:
    layout = ConllLayout()
    try:
        recipe = load_run_recipe(model_dir)
        if recipe is not None:
            layout = ConllLayout(recipe.data.token_column, recipe.data.delimiter, recipe.data.comment_prefix)
    except RecipeError as e:
        logger.warning("%s; reading CoNLL input with the token in the first column", e)
    if token_column is not None:
        layout.token_column = token_column
    if comment_prefix is not None:
        layout.comment_prefix = comment_prefix
    return layout


def _document_chunks(records: Sequence[InputRecord], size: int) -> list[list[int]]:
    """Record indices in chunks of about `size` that never split a document (its sentences are each
    other's context), documents in order of their first record."""
    documents: dict[Any, list[int]] = {}
    for i, record in enumerate(records):
        documents.setdefault(record.document_id or ("no document", i), []).append(i)
    chunks: list[list[int]] = [[]]
    for indices in documents.values():
        if chunks[-1] and len(chunks[-1]) + len(indices) > size:
            chunks.append([])
        chunks[-1].extend(indices)
    return chunks if chunks[0] else []


def _predict_records(predictor: NerPredictor, records: Iterable[InputRecord]) -> list[dict[str, Any]]:
    """Texts and token lists of one chunk in one call (documents keep their context), in input order."""
    records = list(records)
    split = [split_words(r.text) if r.tokens is None else None for r in records]
    words = [r.tokens if s is None else [w for w, _, _ in s] for r, s in zip(records, split)]
    tagged = predictor.predict_words(words, [r.document_id for r in records])
    return [predictor.tokens_result(r.tokens, t) if s is None else predictor.text_result(r.text, s, t)
            for r, s, t in zip(records, split, tagged)]
