"""The documentation: the MkDocs site builds strictly, README links resolve, and every shell command in README.md
and docs/ runs as written (nertune lines parse against the real CLI, make targets, scripts and recipes exist).

Blocks that need the Hugging Face Hub carry a line `# needs the Hub`; their commands are not checked.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
SHELL_FENCE = re.compile(r"^```(bash|sh|shell)\s*$")
NEEDS_HUB = re.compile(r"^\s*#\s*needs the Hub\b", re.I)
HEREDOC = re.compile(r"<<-?\s*'?\"?(\w+)'?\"?")
PATHS = re.compile(r"(?<![\w/.-])((?:scripts|recipes|bench)/[\w./-]+\.(?:py|ya?ml|sh|json))")


def shell_blocks(path: Path) -> list[tuple[int, list[str]]]:
    """(line number of the first line, lines) of each ```bash / ```sh block."""
    blocks, current, start = [], None, 0
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if current is None:
            if SHELL_FENCE.match(line.strip()):
                current, start = [], number + 1
        elif line.strip() == "```":
            blocks.append((start, current))
            current = None
        else:
            current.append(line)
    return blocks


def logical_lines(start: int, lines: list[str]) -> list[tuple[int, str]]:
    """Lines with `\\` continuations joined and heredoc bodies left out."""
    out, pending, pending_at, heredoc_end = [], "", 0, None
    for offset, line in enumerate(lines):
        if heredoc_end is not None:
            heredoc_end = None if line.strip() == heredoc_end else heredoc_end
            continue
        if not pending:
            pending_at = start + offset
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        text = pending + line
        pending = ""
        heredoc = HEREDOC.search(text)
        if heredoc:
            heredoc_end = heredoc.group(1)
        out.append((pending_at, text))
    return out


def commands(text: str) -> list[list[str]]:
    """The simple commands of one shell line (split at ; && || |), comments dropped."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        tokens = list(lexer)
    except ValueError:  # unbalanced quotes inside $(...) and the like: nothing we check
        return []
    result, current = [], []
    for token in tokens:
        if token and set(token) <= set(";&|"):
            result.append(current)
            current = []
        else:
            current.append(token)
    result.append(current)
    return [c for c in result if c]


class _Parsed(BaseException):
    """Raised once the CLI's parser accepted the arguments, before any command runs."""


def cli_parse_error(argv: list[str]) -> str | None:
    """None when `nertune ARGV` parses against the real `nertune.cli`; else what it printed.

    The CLI builds its parsers as it likes (one per command, or subparsers); the outermost parse_args or
    parse_known_args call is stopped right after it succeeds, so no command does its work.
    """
    from nertune import cli

    parse_args, parse_known_args = argparse.ArgumentParser.parse_args, argparse.ArgumentParser.parse_known_args
    state = {"depth": 0, "in_parse_args": False}

    def stop_after_parse_args(self, args=None, namespace=None):
        state["in_parse_args"] = True
        result = parse_args(self, args, namespace)
        raise _Parsed(result)

    def stop_after_parse_known_args(self, args=None, namespace=None):
        state["depth"] += 1
        try:
            result = parse_known_args(self, args, namespace)
        finally:
            state["depth"] -= 1
        if state["depth"] == 0 and not state["in_parse_args"]:
            raise _Parsed(result)
        return result

    err, out = io.StringIO(), io.StringIO()
    with (
        mock.patch.object(argparse.ArgumentParser, "parse_args", stop_after_parse_args),
        mock.patch.object(argparse.ArgumentParser, "parse_known_args", stop_after_parse_known_args),
        contextlib.redirect_stderr(err),
        contextlib.redirect_stdout(out),
    ):
        try:
            code = cli.main(list(argv))
        except _Parsed:
            return None
        except SystemExit as e:  # argparse: --help/--version exit 0, bad arguments exit 2
            return None if e.code in (0, None) else (err.getvalue().strip() or f"exit {e.code}")
    if code == 0 and all(arg.startswith("-") for arg in argv):  # `nertune --version`: handled before any command
        return None
    return f"exit {code} without parsing: {(err.getvalue() or out.getvalue()).strip()}"


def make_error(args: list[str]) -> str | None:
    """None when `make -n ARGS` finds the target (it only prints what it would run)."""
    done = subprocess.run(["make", "-n", *args], cwd=ROOT, capture_output=True, text=True, timeout=60)
    return None if done.returncode == 0 else done.stderr.strip()[-500:]


def check_command(command: list[str], make_seen: dict) -> str | None:
    while command and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", command[0]):  # VAR=value cmd
        command = command[1:]
    if not command:
        return None
    name = command[0]
    if name == "nertune":
        return cli_parse_error(command[1:])
    if name in ("python", "python3", "accelerate", "torchrun") and "-m" in command:
        module = command[command.index("-m") + 1]
        if module == "nertune.cli":
            return cli_parse_error(command[command.index("-m") + 2 :])
        sys.path.insert(0, str(ROOT))
        try:
            found = importlib.util.find_spec(module) is not None
        finally:
            sys.path.remove(str(ROOT))
        return None if found else f"no module {module}"
    if name == "make":
        key = tuple(command[1:])
        if key not in make_seen:
            make_seen[key] = make_error(list(key))
        return make_seen[key]
    return None


def test_site_builds_strictly(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},  # Material's end-of-life banner, not a build warning
    )
    log = done.stdout + done.stderr
    assert done.returncode == 0, log
    assert not re.search(r"^(WARNING|ERROR)\b", log, re.M), log
    benchmarks = (tmp_path / "site" / "benchmarks" / "index.html").read_text(encoding="utf-8")
    assert "2026-11-29" in benchmarks and "pytorch_int8" in benchmarks  # the bench.json section was rendered
    assert "bench:" not in benchmarks
    # The key reference is generated from the schema: every settable key is on the page, none hand-kept.
    from nertune.recipe.schema import all_keys

    configuration = (tmp_path / "site" / "configuration" / "index.html").read_text(encoding="utf-8")
    keys = all_keys()
    assert len(keys) > 50 and "data.train_file" in keys
    missing = [key for key in keys if f"<code>{key}</code>" not in configuration]
    assert not missing, f"recipe keys missing from the built configuration page: {missing}"
    assert "recipe-key-reference" not in configuration  # the markers were replaced


def test_the_key_reference_hook_fails_loudly_without_its_generator():
    """docs/hooks.py run in a process (tests never import bench/, which the hook imports) where nertune.recipe
    lacks recipe_key_reference: the page is refused, not built with an empty or stale reference."""
    script = (
        "import runpy, sys, types\n"
        "import nertune.recipe\n"
        "del nertune.recipe.recipe_key_reference\n"
        "hooks = runpy.run_path('docs/hooks.py')\n"
        "page = types.SimpleNamespace(file=types.SimpleNamespace(src_path='configuration.md'))\n"
        "text = '<!-- recipe-key-reference -->\\nold\\n<!-- /recipe-key-reference -->'\n"
        "try:\n"
        "    hooks['on_page_markdown'](text, page, {'docs_dir': 'docs'}, None)\n"
        "except RuntimeError as err:\n"
        "    print('refused:', err)\n"
        "    sys.exit(0)\n"
        "sys.exit('built without the generator')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "refused:" in done.stdout and "recipe_key_reference" in done.stdout


def test_readme_is_a_portal_whose_links_resolve():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.encode("utf-8")) <= 15 * 1024
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"^[a-z]+://", target) or target.startswith("#"):
            continue
        if not (ROOT / target.split("#", 1)[0]).exists():
            broken.append(target)
    assert not broken, broken


def test_every_shell_command_in_the_docs_runs_as_written():
    failures, checked, make_seen = [], 0, {}
    for path in DOC_FILES:
        for start, lines in shell_blocks(path):
            if any(NEEDS_HUB.match(line) for line in lines):
                continue
            for number, text in logical_lines(start, lines):
                where = f"{path.relative_to(ROOT)}:{number}"
                for referenced in PATHS.findall(text):
                    if not (ROOT / referenced).exists():
                        failures.append(f"{where}: {referenced} does not exist")
                for command in commands(text):
                    checked += 1
                    problem = check_command(command, make_seen)
                    if problem:
                        failures.append(f"{where}: {shlex.join(command)}\n    {problem}")
    assert checked > 50  # the blocks were found
    assert not failures, "\n".join(failures)


def test_the_checker_rejects_what_the_cli_rejects():
    assert cli_parse_error(["predict", "runs/x", "--input", "a.txt", "--output", "b.jsonl"]) is None
    assert cli_parse_error(["predict", "runs/x", "--input", "a.txt"])  # --output is required
    assert cli_parse_error(["no-such-command"])
    assert make_error(["no-such-target"])
    assert make_error(["docs"]) is None


def test_hub_blocks_are_recognised_and_heredocs_skipped():
    lines = ["python - <<'PY'", "import os; os.remove('x')", "PY", "nertune train a.yaml \\", "    x=1"]
    joined = [(number, text.split()) for number, text in logical_lines(10, lines)]
    assert joined == [(10, ["python", "-", "<<'PY'"]), (13, ["nertune", "train", "a.yaml", "x=1"])]
    assert commands('D=x; FILES="a b" && nertune evaluate $D --name n  # comment') == [
        ["D=x"],
        ["FILES=a b"],
        ["nertune", "evaluate", "$D", "--name", "n"],
    ]
    assert NEEDS_HUB.match("# needs the Hub")


def render(*args: str | Path) -> subprocess.CompletedProcess:
    """`python -m bench.render ARGS` from the checkout (the harness is run, never imported, by the tests)."""
    return subprocess.run(
        [sys.executable, "-m", "bench.render", *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def test_render_release_needs_its_metadata_and_renders_every_row(tmp_path):
    path = ROOT / "docs" / "benchmarks" / "2026-11-29-quickstart-cpu.json"
    section = render(path)
    assert section.returncode == 0, section.stderr
    assert section.stdout.startswith("## 2026-11-29: ")
    assert "- commit: `0426ff5`" in section.stdout
    assert "| ONNX Runtime int8 inference sentences/s (CPU option) | 311.8 | | 3.48x, F1 -0.0129 |" in section.stdout
    result = json.loads(path.read_text(encoding="utf-8"))
    del result["release"]
    (tmp_path / "bare.json").write_text(json.dumps(result), encoding="utf-8")
    bare = render(tmp_path / "bare.json")
    assert bare.returncode != 0 and "date, commit, hardware" in bare.stderr
    # A fresh bench.json records the F1 of every option, not only the differences.
    fresh = {key: value for key, value in result.items() if not key.endswith("_change") or key == "int8_f1_change"}
    fresh.update(f1_pytorch=0.50, f1_onnx=0.50, f1_onnx_int8=0.49, time_to_target_s_project=None)
    (tmp_path / "fresh.json").write_text(json.dumps(fresh), encoding="utf-8")
    table = render(tmp_path / "fresh.json", "--date", "2026-12-04", "--commit", "abc1234", "--hardware", "2-core CPU")
    assert table.returncode == 0, table.stderr
    assert "| ONNX Runtime inference sentences/s (CPU option) | 148.7 | | 1.66x, F1 +0.0000 |" in table.stdout
    assert "| ONNX Runtime int8 inference sentences/s (CPU option) | 311.8 | | 3.48x, F1 -0.0100 |" in table.stdout
    assert "| not reached | 210.1 | - |" in table.stdout
    # Since the time to target is timed per F1 seed: the mean, and each seed's step (None: never reached).
    seeds = {**fresh, "target_reached_steps": [80, 140, 120], "time_to_target_s_project": 30.04}
    seeds["time_to_target_speedup"] = seeds["time_to_target_s_baseline"] / 30.04
    (tmp_path / "seeds.json").write_text(json.dumps(seeds), encoding="utf-8")
    table = render(tmp_path / "seeds.json", "--date", "2026-12-07", "--commit", "abc1234", "--hardware", "2-core CPU")
    assert table.returncode == 0, table.stderr
    assert "| 30.0, mean of 3 seeds (steps 80/140/120) | 210.1 | 6.99x |" in table.stdout
    seeds.update(target_reached_steps=[80, None, 120], time_to_target_s_project=None, time_to_target_speedup=None)
    (tmp_path / "missed.json").write_text(json.dumps(seeds), encoding="utf-8")
    table = render(tmp_path / "missed.json", "--date", "2026-12-07", "--commit", "abc1234", "--hardware", "2-core CPU")
    assert "| not reached by every seed (steps 80/None/120) | 210.1 | - |" in table.stdout
