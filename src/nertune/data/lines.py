"""Encodings, reading a text file line by line, and splitting a line into columns."""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from pathlib import Path

from .errors import DataError

# Only ASCII whitespace separates columns: str.split() would also split on non-breaking or
# ideographic spaces, which do occur inside tweet tokens and must be preserved exactly.
ASCII_WHITESPACE = " \t\n\r\f\v"
_WS_RUN = re.compile(r"[ \t\n\r\f\v]+")
_BOM = b"\xef\xbb\xbf"


def check_encoding(encoding: str) -> str:
    """The codec's canonical name; only encodings that write a newline as b"\\n" (UTF-8, Latin-1, cp1252 ...),
    since lines are split before they are decoded."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise DataError(f"unknown encoding {encoding!r} (e.g. utf-8, latin-1, cp1252)") from None
    if "\n".encode(name) != b"\n":
        raise DataError(f"encoding {encoding!r} is not ASCII-compatible; convert the file to UTF-8 first")
    return name


def read_lines(path: str | Path, encoding: str = "utf-8", hint: str = "set data.encoding") -> Iterator[tuple[int, str]]:
    """`(line number, text without the line ending)` for every line of a text file.

    Binary lines are decoded one by one, so a decoding error names its exact line (a text-mode file
    decodes 8 KiB ahead of the line being read). A UTF-8 byte-order mark is dropped. Lines end at
    \\n only (a \\f or \\u2028 inside a line stays in it); a trailing \\r is dropped.
    """
    encoding = check_encoding(encoding)
    with open(path, "rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            if line_no == 1 and raw.startswith(_BOM) and encoding == "utf-8":
                raw = raw[len(_BOM):]
            try:
                yield line_no, raw.decode(encoding).rstrip("\r\n")
            except UnicodeDecodeError as err:
                raise DataError(f"not valid {encoding} ({err.reason} at byte {err.start}): {raw[:80]!r}; {hint} "
                                "(e.g. latin-1: the original German CoNLL-2003 files use it)", path, line_no) from None


def is_blank(text: str) -> bool:
    """Blank for every reader: nothing but ASCII whitespace (a non-breaking space is a character)."""
    return not text.strip(ASCII_WHITESPACE)


def split_columns(text: str, delimiter: str | None) -> list[str]:
    """Columns of one non-blank line: `delimiter` if given, else tabs if any, else whitespace runs."""
    if delimiter is not None:
        fields = text.split(delimiter)
    elif "\t" in text:
        fields = text.split("\t")  # tab files may have spaces inside tokens
    else:
        fields = _WS_RUN.split(text.strip(ASCII_WHITESPACE))
    return [field.strip(ASCII_WHITESPACE) for field in fields]
