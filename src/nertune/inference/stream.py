"""Streaming for `nertune predict`: document-preserving chunks over a record stream, writing results in input
order as chunks finish, resuming an interrupted output, and the per-process part files of a sharded run.

Memory holds one chunk plus the records that wait for an earlier, still unfinished one (JSONL documents
interleaved within `JSONL_DOCUMENT_GAP` records), never the whole input or output.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import os
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from nertune.data import DataError, InputRecord, raw_lines

logger = logging.getLogger(__name__)

# The most records of other documents that may come between two records of one JSONL document: a document
# stays open (its records held) until this many records pass without one of its own.
JSONL_DOCUMENT_GAP = 1000
_READ_SIZE = 1 << 20


@dataclass
class Chunk:
    """Whole documents predicted in one call: `(record index, record)` pairs; `number` counts chunks from 0."""

    number: int
    records: list[tuple[int, InputRecord]]


def document_chunks(
    records: Iterable[InputRecord], size: int, document_gap: int = 0, path: str | Path | None = None
) -> Iterator[Chunk]:
    """Chunks of about `size` records that never split a document (its sentences are each other's context).

    A record without a `document_id` is a document of its own. A document ends when `document_gap` records of
    other documents have followed its last record (0: when another document starts, as in text and CoNLL
    input, where a document's records are contiguous). A record of a document that has ended is a `DataError`
    naming its line in `path`. Documents go into chunks in the order they end.
    """
    open_documents: OrderedDict[str, list[tuple[int, InputRecord]]] = OrderedDict()  # least recently seen first
    last_seen: dict[str, int] = {}
    ended: dict[str, int] = {}  # JSONL document id -> its last line, to name it when it reappears
    chunk: list[tuple[int, InputRecord]] = []
    number = 0

    def add(document: list[tuple[int, InputRecord]]) -> Iterator[Chunk]:
        nonlocal chunk, number
        if chunk and len(chunk) + len(document) > size:
            yield Chunk(number, chunk)
            chunk, number = [], number + 1
        chunk.extend(document)

    def end(key: str) -> Iterator[Chunk]:
        document = open_documents.pop(key)
        del last_seen[key]
        if document_gap:
            ended[key] = document[-1][1].line
        yield from add(document)

    for index, record in enumerate(records):
        key = record.document_id
        if key in open_documents:  # seen now: it must not end below
            open_documents.move_to_end(key)
            last_seen[key] = index
        while open_documents:
            oldest = next(iter(open_documents))
            if index - last_seen[oldest] <= document_gap:
                break
            yield from end(oldest)
        if not key:
            yield from add([(index, record)])
            continue
        if key in ended:
            raise DataError(
                f"document_id {key!r} reappears more than {document_gap} records after its record on "
                f"line {ended[key]}: predict streams the input and reads a document's records together; "
                f"keep them within {document_gap} records of each other",
                path,
                record.line,
            )
        open_documents.setdefault(key, []).append((index, record))
        open_documents.move_to_end(key)
        last_seen[key] = index
    while open_documents:
        yield from end(next(iter(open_documents)))
    if chunk:
        yield Chunk(number, chunk)


class OutputSink:
    """Where rendered records go: the output file itself (`index` unused), or a part file of one process
    with an index file of `(record index, byte length)` lines for the merge."""

    def __init__(self, handle: BinaryIO, index_handle: BinaryIO | None = None) -> None:
        self.handle = handle
        self.index_handle = index_handle

    def write(self, index: int, text: str) -> None:
        data = text.encode("utf-8")
        self.handle.write(data)
        if self.index_handle is not None:
            self.index_handle.write(f"{index}\t{len(data)}\n".encode())

    def flush(self) -> None:
        # Flushed per chunk: a killed process leaves every finished chunk on disk (--resume continues it).
        for handle in (self.handle, self.index_handle):
            if handle is not None:
                handle.flush()


class OrderedWriter:
    """Writes records in input order whatever order their chunks finish in. `render(record, result)` gives a
    record's text; a None result (a record another process predicts, or one already in a resumed output) is
    rendered too, so that CoNLL output can step over the record's input lines, but not written."""

    def __init__(self, sink: OutputSink, render: Callable[[InputRecord, dict[str, Any] | None], str]) -> None:
        self.sink = sink
        self.render = render
        self.waiting: dict[int, tuple[InputRecord, dict[str, Any] | None]] = {}
        self.next_index = 0

    def put(self, index: int, record: InputRecord, result: dict[str, Any] | None) -> None:
        self.waiting[index] = (record, result)
        while self.next_index in self.waiting:
            record, result = self.waiting.pop(self.next_index)
            text = self.render(record, result)
            if result is not None and text:
                self.sink.write(self.next_index, text)
            self.next_index += 1

    def flush(self) -> None:
        self.sink.flush()

    def finish(self) -> None:
        if self.waiting:  # a bug, not bad input: every record is put exactly once
            raise RuntimeError(f"records {sorted(self.waiting)[:5]}... still wait for record {self.next_index}")
        self.sink.flush()


# --------------------------------------------------------------------------------------------
# Files: counting lines, resuming, merging parts


def count_lines(path: str | Path) -> tuple[int, int]:
    """`(complete lines, byte offset after the last newline)` of a file, read in binary chunks."""
    lines = offset = position = 0
    with open(path, "rb") as f:
        while block := f.read(_READ_SIZE):
            newlines = block.count(b"\n")
            if newlines:
                lines += newlines
                offset = position + block.rindex(b"\n") + 1
            position += len(block)
    return lines, offset


def count_input_lines(path: str | Path) -> int:
    """Lines as `read_lines` sees them (`raw_lines`: a lone \\r ends a line too; a last line without a newline
    counts)."""
    with open(path, "rb") as f:
        return sum(1 for _ in raw_lines(f))


def offset_after_lines(path: str | Path, n_lines: int) -> int:
    """Byte offset just after the `n_lines`-th newline of a file (0 for none)."""
    if n_lines == 0:
        return 0
    seen = position = 0
    with open(path, "rb") as f:
        while block := f.read(_READ_SIZE):
            newlines = block.count(b"\n")
            if seen + newlines >= n_lines:
                at = -1
                for _ in range(n_lines - seen):
                    at = block.index(b"\n", at + 1)
                return position + at + 1
            seen, position = seen + newlines, position + len(block)
    raise ValueError(f"{path} has fewer than {n_lines} lines")


@dataclass
class ResumePoint:
    """How much of an interrupted output is kept: the first `records` input records, `offset` bytes."""

    records: int
    offset: int


def resume_point(output_path: Path, block_lines: Iterable[int], tail_lines: int = 0) -> ResumePoint:
    """The complete records of an interrupted output: the most leading records whose output lines
    (`block_lines`, one count per input record; `tail_lines` after the last one) are all complete on disk.
    A partly written record, or a partly written CoNLL tail, is cut off (and written again)."""
    if not output_path.is_file():
        logger.info("--resume: %s does not exist yet, predicting from the start", output_path)
        return ResumePoint(0, 0)
    complete, _ = count_lines(output_path)
    records = used = 0
    for n in block_lines:
        if used + n > complete:
            break
        records, used = records + 1, used + n
    else:
        if complete > used + tail_lines:
            raise ValueError(
                f"--resume: {output_path} has {complete} lines, more than predicting this input "
                f"writes ({used + tail_lines}): is it the output of another input or format?"
            )
    offset = offset_after_lines(output_path, used)
    logger.info(
        "--resume: %d records already in %s; %d bytes after them are cut and written again",
        records,
        output_path,
        output_path.stat().st_size - offset,
    )
    return ResumePoint(records, offset)


def part_paths(output_path: Path, rank: int, world_size: int) -> tuple[Path, Path]:
    """The part file and its index file of process `rank`, next to the output."""
    part = output_path.with_name(f"{output_path.name}.part{rank}-of-{world_size}")
    return part, part.with_name(part.name + ".index")


def _part_entries(index_path: Path, part: int) -> Iterator[tuple[int, int, int]]:
    with open(index_path, "rb") as f:
        for line in f:
            index, length = line.split(b"\t")
            yield int(index), part, int(length)


def merge_parts(output: BinaryIO, output_path: Path, world_size: int) -> None:
    """Appends the records of every process's part file to `output` in input order, then deletes the parts."""
    paths = [part_paths(output_path, rank, world_size) for rank in range(world_size)]
    with contextlib.ExitStack() as stack:
        handles = [stack.enter_context(open(part, "rb")) for part, _ in paths]
        entries = heapq.merge(*(_part_entries(index, rank) for rank, (_, index) in enumerate(paths)))
        output.writelines(handles[rank].read(length) for _, rank, length in entries)
    for part, index in paths:
        os.remove(part)
        os.remove(index)
