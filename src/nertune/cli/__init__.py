"""The `nertune` command: `nertune --help` lists the commands, `nertune COMMAND --help` explains one.

Exit codes: 0 done, 2 bad input (a NertuneError, or bad arguments: one `error:` line), 1 a bug (anything else:
the traceback is printed).

May import: every layer, lazily inside the command that needs it, so `nertune --help` stays fast. Each command
parses its arguments here and calls one function of its layer.
"""

from __future__ import annotations

import argparse
import difflib
import logging
import sys
import traceback

import nertune
from nertune.cli.commands import COMMANDS as CORE_COMMANDS
from nertune.cli.loop import LOOP_COMMANDS
from nertune.errors import NertuneError

__all__ = ["COMMANDS", "build_parser", "main"]

COMMANDS = {**CORE_COMMANDS, **LOOP_COMMANDS}


def _setup_logging() -> None:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    for noisy in ("httpx", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def build_parser() -> argparse.ArgumentParser:
    """`nertune` with one subparser per command."""
    return _parsers()[0]


def _parsers() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(
        prog="nertune", description="Fine-tune BERT-family encoders for named-entity recognition."
    )
    parser.add_argument(
        "--version", action="version", version=f"nertune {nertune.__version__}", help="print the version and exit"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    subparsers = {}
    for name, (summary, add_arguments, _run) in COMMANDS.items():
        subparsers[name] = commands.add_parser(name, help=summary, description=summary[0].upper() + summary[1:] + ".")
        add_arguments(subparsers[name])
    return parser, subparsers


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, subparsers = _parsers()
    try:
        if not argv or argv[0].startswith("-"):
            parser.parse_args(argv)  # --help, --version; nothing else is valid without a command
            parser.print_help(sys.stderr)
            return 2
        if argv[0] not in COMMANDS:
            close = difflib.get_close_matches(argv[0], list(COMMANDS), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; commands: {', '.join(COMMANDS)}"
            print(f"{parser.format_usage()}error: unknown command {argv[0]!r}{hint}", file=sys.stderr)
            return 2
        sub = subparsers[argv[0]]
        # Options may come before, between or after key=value overrides; a command with subcommands parses plainly.
        args = sub.parse_args(argv[1:]) if argv[0] == "recipes" else sub.parse_intermixed_args(argv[1:])
    except SystemExit as e:  # argparse: --help/--version (0) or bad arguments (2, its message printed)
        return e.code if isinstance(e.code, int) else 2
    _setup_logging()
    try:
        return COMMANDS[argv[0]][2](args)
    except NertuneError as e:  # bad input: one clear line, no traceback
        logging.getLogger("nertune").error("%s", e)
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception:  # a bug: the traceback is what its report needs
        traceback.print_exc()
        print(
            "error: an unexpected error (a bug in nertune or a library it uses); the traceback is above",
            file=sys.stderr,
        )
        return 1
