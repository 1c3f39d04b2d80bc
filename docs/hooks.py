"""MkDocs hook (mkdocs.yml `hooks:`): generated Markdown inserted into the pages at build time.

- `<!-- bench: FILE.json -->` becomes the dated release section `bench/render.py` renders from that bench.json
  (FILE relative to the page).
- The text between `<!-- recipe-key-reference -->` and `<!-- /recipe-key-reference -->` is replaced by
  `nertune.recipe.recipe_key_reference()`, the table generated from the recipe schema. A page with the markers
  fails the build when the generator is missing, rather than shipping a stale or empty reference.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # bench/ lives at the repository root, outside the package
sys.path.insert(1, str(ROOT / "src"))

from bench.render import render_file  # noqa: E402

BENCH = re.compile(r"<!--\s*bench:\s*(\S+?)\s*-->")
KEY_REFERENCE = re.compile(r"<!--\s*recipe-key-reference\s*-->.*?<!--\s*/recipe-key-reference\s*-->", re.S)


def recipe_key_reference() -> str:
    """The key table generated from the recipe schema; raises when nertune does not provide the generator."""
    try:
        from nertune.recipe import recipe_key_reference as generate
    except ImportError as err:
        raise RuntimeError(
            f"docs/hooks.py: cannot import nertune.recipe.recipe_key_reference ({err}); the configuration page's "
            "key reference is generated from it"
        ) from err
    return generate()


def on_page_markdown(markdown: str, page, config, files) -> str:
    page_dir = Path(config["docs_dir"]) / Path(page.file.src_path).parent
    markdown = BENCH.sub(lambda m: render_file(page_dir / m.group(1), heading="##"), markdown)
    if KEY_REFERENCE.search(markdown):
        table = recipe_key_reference()
        markdown = KEY_REFERENCE.sub(lambda _: table, markdown)
    return markdown
