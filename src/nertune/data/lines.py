"""Encodings, reading a text file line by line (invisible lines, stray byte-order marks), and splitting a line
into columns."""

from __future__ import annotations

import codecs
import logging
import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import regex

from nertune.data.errors import DataError

logger = logging.getLogger(__name__)

# Only ASCII whitespace separates columns: str.split() would also split on non-breaking or
# ideographic spaces, which do occur inside tweet tokens and must be preserved exactly.
ASCII_WHITESPACE = " \t\n\r\f\v"
_WS_RUN = re.compile(r"[ \t\n\r\f\v]+")
_BOM = b"\xef\xbb\xbf"
# A byte-order mark glued to the start of a token: the start of a file concatenated into the middle of another.
_GLUED_BOM = re.compile(r"(?:^|(?<=[ \t]))\ufeff+")
_HAN = regex.compile(r"\p{Han}")
# What a decoding error tells the user, per setting that chooses a file's encoding: (in general, for GB18030/GBK).
_ENCODING_FIXES = {
    "data.encoding": ("set data.encoding", "set data.encoding=gb18030"),
    "--encoding": ("--encoding sets the input's", "--encoding gb18030"),
}


def check_encoding(encoding: str) -> str:
    """The codec's canonical name; only encodings that write a newline as b"\\n" (UTF-8, Latin-1, cp1252,
    GB18030, GBK ...), since lines are split before they are decoded."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise DataError(f"unknown encoding {encoding!r} (e.g. utf-8, latin-1, cp1252, gb18030)") from None
    if "\n".encode(name) != b"\n":
        raise DataError(f"encoding {encoding!r} is not ASCII-compatible; convert the file to UTF-8 first")
    return name


def looks_like_gb18030(raw: bytes) -> bool:
    """Whether undecodable bytes read as Chinese in GB18030/GBK: they decode, hold Han characters, and most
    of their non-ASCII characters are in GB2312 (both bytes >= 0xA1), as common Chinese text is; Latin-1
    accents followed by ASCII letters also decode as GBK, but not as GB2312."""
    try:
        text = raw.decode("gb18030")
    except UnicodeDecodeError:
        return False
    non_ascii = [c for c in text if ord(c) > 0x7F]
    in_gb2312 = 0
    for char in non_ascii:
        try:
            char.encode("gb2312")
            in_gb2312 += 1
        except UnicodeEncodeError:
            pass
    return bool(_HAN.search(text)) and 2 * in_gb2312 > len(non_ascii)


def _decoding_hint(raw: bytes, encoding: str, setting: str | None) -> str:
    """What to do about a line that is not valid `encoding`, for the setting that chooses the encoding."""
    gb = encoding == "utf-8" and looks_like_gb18030(raw)
    if setting is None:
        found = "it looks like GB18030/GBK; " if gb else ""
        return f"{found}JSON is UTF-8 by its standard: convert the file to UTF-8"
    general, gb_fix = _ENCODING_FIXES[setting]
    if gb:
        return f"looks like GB18030/GBK: {gb_fix}"
    return f"{general} (e.g. latin-1: the original German CoNLL-2003 files use it)"


def is_invisible(text: str) -> bool:
    """Nothing but format characters (Unicode category Cf: a byte-order mark, zero-width spaces and joiners,
    word joiners) and whitespace, with at least one that is not ASCII whitespace."""
    visible = text.strip(ASCII_WHITESPACE)
    return bool(visible) and all(c.isspace() or unicodedata.category(c) == "Cf" for c in visible)


def raw_lines(handle: BinaryIO) -> Iterator[bytes]:
    """The lines of a binary file, without their endings. \\n ends a line, with any \\r before it (CRLF, and the
    \\r\\r\\n of files converted twice); a lone \\r ends one too, as editors show it: files saved on classic
    Mac OS, or exported as Macintosh text by Excel, end every line with \\r alone and would read as one line."""
    for raw in handle:
        if raw.endswith(b"\n"):
            body = raw[:-1].rstrip(b"\r")
        else:  # the last line; in a file of lone \r line ends, the whole file
            body = raw[:-1] if raw.endswith(b"\r") else raw
        if b"\r" in body:
            yield from body.split(b"\r")
        else:
            yield body


def read_lines(
    path: str | Path, encoding: str = "utf-8", setting: str | None = "data.encoding"
) -> Iterator[tuple[int, str]]:
    """`(line number, text without the line ending)` for every line of a text file.

    Binary lines are decoded one by one, so a decoding error names its exact line (a text-mode file
    decodes 8 KiB ahead of the line being read) and says what to set (`setting`: "data.encoding",
    "--encoding", or None for JSON). A UTF-8 byte-order mark starting the file is dropped. Lines end at
    \\n, \\r\\n or a lone \\r (`raw_lines`; a \\f or \\u2028 inside a line stays in it).
    A line of invisible characters only (`is_invisible`) is read as a blank line, and a byte-order mark
    glued to the start of a token is removed: both are logged with their line, since they come from
    concatenated files or editors, not from the annotation.
    """
    encoding = check_encoding(encoding)
    with open(path, "rb") as handle:
        for line_no, raw in enumerate(raw_lines(handle), start=1):
            if line_no == 1 and raw.startswith(_BOM) and encoding == "utf-8":
                raw = raw[len(_BOM) :]
            try:
                text = raw.decode(encoding)
            except UnicodeDecodeError as err:
                raise DataError(
                    f"not valid {encoding} ({err.reason} at byte {err.start}): {raw[:80]!r}; "
                    f"{_decoding_hint(raw, encoding, setting)}",
                    path,
                    line_no,
                ) from None
            if is_invisible(text):
                logger.warning(
                    "%s:%d: a line of invisible characters only (%s) is read as a blank line",
                    path,
                    line_no,
                    " ".join(f"U+{ord(c):04X}" for c in text if not c.isascii()),
                )
                text = ""
            elif "\ufeff" in text and _GLUED_BOM.search(text):
                logger.warning(
                    "%s:%d: removed a byte-order mark (U+FEFF) glued to a token: %r", path, line_no, text[:80]
                )
                text = _GLUED_BOM.sub("", text)
            yield line_no, text


def is_blank(text: str) -> bool:
    """Blank for every reader: nothing but ASCII whitespace (a non-breaking space is a character), or a
    line of invisible characters only (`read_lines` has already made those empty and said so)."""
    return not text.strip(ASCII_WHITESPACE) or is_invisible(text)


def split_columns(text: str, delimiter: str | None) -> list[str]:
    """Columns of one non-blank line: `delimiter` if given, else tabs if any, else whitespace runs."""
    if delimiter is not None:
        fields = text.split(delimiter)
    elif "\t" in text:
        fields = text.split("\t")  # tab files may have spaces inside tokens
    else:
        fields = _WS_RUN.split(text.strip(ASCII_WHITESPACE))
    return [field.strip(ASCII_WHITESPACE) for field in fields]
