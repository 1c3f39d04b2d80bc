"""`nertune predict`: streaming a text, JSONL or CoNLL file through a `NerPredictor`, writing results as they come."""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from nertune.data import (
    PREDICTION_INPUT_FORMATS,
    ConllLayout,
    InputRecord,
    format_from_extension,
    iter_input_lines,
    iter_prediction_input,
    prediction_input_format,
)
from nertune.data.words import split_words
from nertune.distributed import check_world_size
from nertune.errors import PathNotFoundError, RequestError
from nertune.inference.predictor import NerPredictor
from nertune.inference.stream import (
    JSONL_DOCUMENT_GAP,
    Chunk,
    OrderedWriter,
    OutputSink,
    ResumePoint,
    count_input_lines,
    document_chunks,
    merge_parts,
    part_paths,
    resume_point,
)
from nertune.inference.thresholds import apply_thresholds, parse_thresholds
from nertune.model.rundir import RunDir
from nertune.model.settings import ModelSettings

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
    raise RequestError(
        f"cannot tell the output format from {path.name!r}: use a .jsonl or .conll file name, "
        "or --output-format jsonl|conll"
    )


def _result_record(record: InputRecord, result: dict[str, Any], input_format: str) -> dict[str, Any]:
    out: dict[str, Any] = {"id": record.id} if record.has_id else {}
    if input_format == "conll":
        out["line"] = record.line
    out.update(result)
    return out


class _ConllBlocks:
    """CoNLL input's lines handed out record by record, for CoNLL output: a record's block is every line after
    the previous record's last token through its own last token, each token line with its predicted tag
    appended as a new last column; the lines after the last record are the tail."""

    def __init__(self, lines: Iterator[str], layout: ConllLayout | None) -> None:
        self.lines = lines
        self.layout = layout
        self.next_line = 0  # index of the next line of the input to hand out

    def block(self, record: InputRecord, result: dict[str, Any] | None) -> str:
        """The record's block; with a None result its lines are only stepped over."""
        end = record.token_lines[-1] + 1
        tags = dict(zip(record.token_lines, result["tags"])) if result is not None else None
        out = []
        for index in range(self.next_line, end):
            line = next(self.lines)
            if tags is not None:
                out.append(self._line(line, tags.get(index, "O")))  # -DOCSTART- lines get O, like their other columns
        self.next_line = end
        return "".join(out)

    def tail(self) -> str:
        return "".join(self._line(line, "O") for line in self.lines)

    def _line(self, line: str, tag: str) -> str:
        line = line.rstrip(" \t")
        if not line or (self.layout is not None and self.layout.is_comment(line)):
            return f"{line}\n"
        delimiter = "\t" if "\t" in line else " "
        return f"{line}{delimiter}{tag}\n"


def _word_block(result: dict[str, Any] | None) -> str:
    """CoNLL output of text or JSONL input: `word<TAB>tag` lines and a blank line; an empty text has no line
    to write (JSONL output keeps its position)."""
    if result is None or not result["words"]:
        return ""
    return "".join(f"{word}\t{tag}\n" for word, tag in zip(result["words"], result["tags"])) + "\n"


def _block_lines(records: Iterable[InputRecord], input_format: str, output_format: str) -> Iterator[int]:
    """How many output lines each record writes, without predicting (what --resume counts)."""
    previous_end = 0
    for record in records:
        if output_format == "jsonl":
            yield 1
        elif input_format == "conll":
            end = record.token_lines[-1] + 1
            yield end - previous_end
            previous_end = end
        else:
            n_words = len(record.tokens) if record.tokens is not None else len(split_words(record.text))
            yield n_words + 1 if n_words else 0


def run_prediction(
    model_dir: str | Path,
    input_path: str | Path,
    output_path: str | Path,
    input_format: str | None = None,
    output_format: str | None = None,
    batch_size: int = 32,
    device: str | None = None,
    precision: str = "auto",
    documents: bool = False,
    token_column: int | None = None,
    comment_prefix: str | None = None,
    encoding: str = "utf-8",
    resume: bool = False,
    thresholds: Sequence[str] = (),
    predict_records: Callable[[NerPredictor, list[InputRecord]], list[dict[str, Any]]] | None = None,
) -> int:
    """Predict every record of a text, JSONL or CoNLL file and write JSONL or CoNLL; returns the count.

    Formats default from the file names (input: .jsonl/.json, .conll/.tsv/.bio..., `.txt` and other names
    by their content, see `data.formats`; output: .jsonl/.json, .conll/.tsv/.bio..., or .txt for CoNLL input).
    JSONL output has one line per input record, in order, with its `id` when the input has one.
    Documents (context for a model trained with `context_size`): CoNLL `-DOCSTART-` lines, the JSONL
    `document_id` field, or, for text with `documents=True`, blocks of lines separated by blank lines.
    Text and CoNLL input are read in `encoding` (output is always UTF-8). CoNLL input is read with the
    training recipe's token column, delimiter and comment prefix unless
    `token_column`/`comment_prefix` say otherwise; comment lines are copied to CoNLL output unchanged.

    The input is streamed: checked in a first pass (before the model loads), then read, predicted and
    written chunk by chunk (whole documents; a JSONL document's records within `JSONL_DOCUMENT_GAP`
    records of each other), each chunk flushed to disk in input order. `resume` keeps the complete records
    of an existing output (a partly written last one is cut off) and predicts the rest; without it the
    output is overwritten. `thresholds`: `TYPE=SCORE` items (`thresholds.parse_thresholds`), entities
    scored below them dropped. `predict_records(predictor, records)`: the results of one chunk's records
    (default: their entities; `select` adds its scores). Under `accelerate launch`/`torchrun` chunk i is
    predicted by process i % world size into a part file, and process 0 merges the parts into the output
    (the bytes one process writes).
    """
    from tqdm.auto import tqdm

    input_path, output_path = Path(input_path), Path(output_path)
    if not input_path.is_file():
        raise PathNotFoundError(f"input file not found: {input_path}")
    if output_path.resolve() == input_path.resolve():
        raise RequestError(f"--output {output_path} would overwrite the input")
    found = prediction_input_format(
        input_path, input_format, encoding=encoding, layout=ConllLayout(comment_prefix=comment_prefix)
    )
    input_format = found.name
    output_format = _output_format(output_path, output_format, input_format)
    if input_format not in INPUT_FORMATS or output_format not in OUTPUT_FORMATS:
        raise RequestError(
            f"unknown format: input {input_format!r} (one of {INPUT_FORMATS}), "
            f"output {output_format!r} (one of {OUTPUT_FORMATS})"
        )
    # config.json, read once; CoNLL input needs its `nertune` section (the layout) before the input is checked.
    run = RunDir.load(model_dir) if input_format == "conll" else None
    layout = _conll_layout(run.settings, token_column, comment_prefix) if run is not None else None
    rank, world_size, group = _process_group()

    def records(warn: bool = False) -> Iterator[InputRecord]:
        return iter_prediction_input(
            input_path, found, documents=documents, encoding=encoding, layout=layout, warn=warn
        )[1]

    def chunks(warn: bool = False) -> Iterator[Chunk]:
        gap = JSONL_DOCUMENT_GAP if input_format == "jsonl" else 0
        return document_chunks(records(warn), max(1, batch_size) * 16, gap, input_path)  # keeps batches full

    # Check the whole input before loading the model: a bad line fails before any prediction.
    n_records = n_chunks = last_token_line = 0
    for chunk in chunks(warn=rank == 0):
        n_records, n_chunks = n_records + len(chunk.records), n_chunks + 1
        if input_format == "conll":
            last_token_line = max(last_token_line, *(r.token_lines[-1] + 1 for _, r in chunk.records))
    conll_to_conll = input_format == output_format == "conll"
    start = ResumePoint(0, 0)
    if resume:
        tail_lines = count_input_lines(input_path) - last_token_line if conll_to_conll else 0
        start = resume_point(output_path, _block_lines(records(), input_format, output_format), tail_lines)

    if device is None and group is not None:
        device = group.device  # this process's GPU, or the CPU
    run = run if run is not None else RunDir.load(model_dir)
    predictor = NerPredictor.from_pretrained(run, device=device, batch_size=batch_size, precision=precision)
    by_type = parse_thresholds(thresholds, predictor.labels)
    predict_records = predict_records or _predict_records
    output_path.parent.mkdir(parents=True, exist_ok=True)
    cursor = _ConllBlocks(iter_input_lines(input_path, encoding), layout) if conll_to_conll else None
    parts = part_paths(output_path, rank, world_size) if group is not None else None
    with contextlib.ExitStack() as stack:
        if parts is None:
            sink = OutputSink(stack.enter_context(_open_output(output_path, start, resume)))
        else:
            sink = OutputSink(stack.enter_context(open(parts[0], "wb")), stack.enter_context(open(parts[1], "wb")))
        writer = OrderedWriter(sink, _renderer(cursor, input_format, output_format))
        progress = stack.enter_context(
            tqdm(
                total=n_records,
                initial=start.records,
                unit="record",
                desc="predict",
                disable=rank != 0 or n_chunks <= 1,
            )
        )
        for chunk in chunks():
            indices = [i for i, _ in chunk.records]
            todo = max(indices) >= start.records and chunk.number % world_size == rank
            # A chunk that reaches into a resumed output is predicted whole: its documents and batches are
            # those of the interrupted run, so its results are the same bytes.
            results = (
                apply_thresholds(predict_records(predictor, [r for _, r in chunk.records]), by_type, predictor.scheme)
                if todo
                else [None] * len(indices)
            )
            for (i, record), result in zip(chunk.records, results):
                writer.put(i, record, result if i >= start.records else None)
            writer.flush()
            progress.update(sum(i >= start.records for i in indices))
        writer.finish()
        tail = cursor.tail() if cursor is not None else ""
        if parts is None:
            sink.write(n_records, tail)
    if group is not None:
        group.wait_for_everyone()
        if rank == 0:
            with _open_output(output_path, start, resume) as output:
                merge_parts(output, output_path, world_size)
                output.write(tail.encode("utf-8"))
        group.wait_for_everyone()
        group.close()
    if rank == 0:
        logger.info(
            "predicted %d records of %s -> %s (%s)", n_records - start.records, input_path, output_path, output_format
        )
    return n_records


def _renderer(cursor: _ConllBlocks | None, input_format: str, output_format: str):
    """`render(record, result)` of the output format (a None result: nothing to write)."""
    if cursor is not None:
        return cursor.block
    if output_format == "conll":
        return lambda record, result: _word_block(result)
    return lambda record, result: (
        "" if result is None else json.dumps(_result_record(record, result, input_format), ensure_ascii=False) + "\n"
    )


def _open_output(path: Path, start: ResumePoint, resume: bool) -> BinaryIO:
    """The output to write to: cut back to `start` when resuming, else new (an existing file is overwritten)."""
    if not resume or not path.is_file():
        return open(path, "wb")
    output = open(path, "r+b")  # noqa: SIM115 - the caller closes it
    output.truncate(start.offset)
    output.seek(start.offset)
    return output


class _ProcessGroup:
    """This process among those `accelerate launch` or `torchrun` started (RANK, WORLD_SIZE, LOCAL_RANK):
    torch.distributed over gloo on CPU, nccl on GPUs, only to wait for each other."""

    def __init__(self, world_size: int) -> None:
        import torch
        import torch.distributed as dist

        self.world_size = world_size
        self.rank = int(os.environ.get("RANK", "0"))
        cuda = torch.cuda.is_available()
        self.device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if cuda else "cpu"
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if cuda else "gloo")

    def wait_for_everyone(self) -> None:
        import torch.distributed as dist

        dist.barrier()

    def close(self) -> None:
        import torch.distributed as dist

        dist.destroy_process_group()


def _process_group() -> tuple[int, int, _ProcessGroup | None]:
    """(rank, world size, process group or None) of this process: several under `accelerate launch` or
    `torchrun`, each predicting a shard of the chunks."""
    world_size = int(os.environ.get("WORLD_SIZE") or 1)
    check_world_size(world_size)  # `accelerate launch --cpu --num_processes 2` would run one process silently
    if world_size == 1:
        return 0, 1, None
    group = _ProcessGroup(world_size)
    return group.rank, world_size, group


def _conll_layout(settings: ModelSettings, token_column: int | None, comment_prefix: str | None) -> ConllLayout:
    """The training data's CoNLL layout (config.json's section), `token_column`/`comment_prefix` overriding it."""
    layout = ConllLayout(settings.token_column, settings.delimiter, settings.comment_prefix)
    if token_column is not None:
        layout.token_column = token_column
    if comment_prefix is not None:
        layout.comment_prefix = comment_prefix
    return layout


def _predict_records(predictor: NerPredictor, records: Iterable[InputRecord]) -> list[dict[str, Any]]:
    """Texts and token lists of one chunk in one call (documents keep their context), in input order."""
    records = list(records)
    inputs = [r.text if r.tokens is None else r.tokens for r in records]
    return predictor.predict(inputs, [r.document_id for r in records])
