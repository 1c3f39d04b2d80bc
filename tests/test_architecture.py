"""Structure of src/nertune: no import cycles, and the CRF and span heads live in heads/ (and the recipe schema)
only."""

from __future__ import annotations

import ast
import io
import tokenize
import typing
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "nertune"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """Every nertune module `path` imports, at any depth (imports inside functions count too)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            # `from nertune import schemes` imports the module nertune.schemes; `from .x import y`, the module x.
            submodules = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in modules]
            targets = submodules or [base]
        else:
            continue
        found |= {t for t in targets if t in modules and t != name}
    return found


def import_graph() -> dict[str, set[str]]:
    files = sorted(PACKAGE.rglob("*.py"))
    modules = {_module_name(f) for f in files}
    return {_module_name(f): _imports(f, modules) for f in files}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_the_import_graph_sees_relative_and_lazy_imports():
    graph = import_graph()
    assert "nertune.heads.base" in graph["nertune.heads.crf"]  # from .base import ...
    assert "nertune.schemes" in graph["nertune.heads.base"]  # from ..schemes import ...
    assert "nertune.model.rundir" in graph["nertune.evaluation.run"]  # imported inside run_evaluation


def test_no_import_cycles():
    graph = import_graph()
    assert (
        "nertune.model.loading" not in graph["nertune.model.lora"]
        and "nertune.model.lora" not in graph["nertune.model.rundir"]
    )
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def _code_without_comments_and_docstrings(path: Path) -> str:
    source = path.read_text(encoding="utf-8")
    docstrings = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                docstrings.add((first.lineno, first.col_offset))
    kept = [
        tok.string
        for tok in tokenize.generate_tokens(io.StringIO(source).readline)
        if tok.type != tokenize.COMMENT and not (tok.type == tokenize.STRING and tok.start in docstrings)
    ]
    return " ".join(kept)


def test_only_heads_and_the_recipe_schema_know_the_crf():
    allowed = {PACKAGE / "recipe" / "definition.py"} | set((PACKAGE / "heads").rglob("*.py"))
    offenders = [
        str(p.relative_to(PACKAGE))
        for p in sorted(PACKAGE.rglob("*.py"))
        if p not in allowed and "crf" in _code_without_comments_and_docstrings(p).lower()
    ]
    assert offenders == []
    assert "crf" in _code_without_comments_and_docstrings(PACKAGE / "heads" / "crf.py")  # the check reads code


def _names_the_span_head(path: Path) -> bool:
    """Whether code names the span head: the string "span" (its recipe name), its class or its recipe keys."""
    names = {"SpanHead", "span_max_width", "span_learning_rate"}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and node.value == "span":
            return True
        name = getattr(node, "id", None) or getattr(node, "attr", None) or getattr(node, "arg", None)
        if name in names or (isinstance(node, ast.alias) and node.name in names):
            return True
    return False


def test_only_heads_and_the_recipe_schema_know_the_span_head():
    allowed = {PACKAGE / "recipe" / "definition.py"} | set((PACKAGE / "heads").rglob("*.py"))
    offenders = [
        str(p.relative_to(PACKAGE))
        for p in sorted(PACKAGE.rglob("*.py"))
        if p not in allowed and _names_the_span_head(p)
    ]
    assert offenders == []
    assert _names_the_span_head(PACKAGE / "heads" / "span.py")  # the check reads code
    assert _names_the_span_head(PACKAGE / "recipe" / "definition.py")


def test_the_recipe_offers_exactly_the_registered_heads():
    from nertune.heads import HEADS, get_head
    from nertune.recipe.schema import Recipe, load_recipe

    assert set(typing.get_args(Recipe.model_fields["head"].annotation)) == set(HEADS) and Recipe().head in HEADS
    for name in HEADS:
        assert load_recipe(None, ["model_name_or_path=x", f"head={name}"]).head == name
        assert get_head(name).name == name


def test_tests_share_one_helper_module():
    """Tests import helpers from tests/helpers.py only: never from conftest.py or from another test module."""
    offenders = []
    for path in sorted((PACKAGE.parents[1] / "tests").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.ImportFrom)
                and node.level
                and (node.module or "").split(".")[0] not in ("helpers",)
            ):
                offenders.append(f"{path.name}: from {'.' * node.level}{node.module or ''} import ...")
    assert offenders == []


# -- the layers (declared once, in nertune.LAYERS)


def layer_of(module: str) -> int:
    """The index in `nertune.LAYERS` of the layer that holds `module` (a module or package prefix match)."""
    from nertune import LAYERS

    for index, layer in enumerate(LAYERS):
        if any(module == prefix or module.startswith(prefix + ".") for prefix in layer):
            return index
    raise AssertionError(f"{module} is in no layer of nertune.LAYERS")


def test_the_layer_check_sees_an_upward_import():
    assert layer_of("nertune.data.align") < layer_of("nertune.training.run")
    assert layer_of("nertune.errors") == 0 and layer_of("nertune.cli") == layer_of("nertune.api")


def test_every_module_imports_only_its_own_layer_or_lower():
    graph = import_graph()
    upward = sorted(
        f"{module} (layer {layer_of(module)}) imports {target} (layer {layer_of(target)})"
        for module, targets in graph.items()
        if module != "nertune"
        for target in targets
        if target != "nertune" and layer_of(target) > layer_of(module)
    )
    assert upward == []


def test_each_package_says_what_it_owns_and_may_import():
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        assert "May import" in doc or init.parent.name in ("data", "heads"), (
            f"{init}: no 'May import:' in its docstring"
        )


def test_the_package_stays_small_at_the_top_and_in_each_module():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 8, top
    too_long = {
        str(p.relative_to(PACKAGE)): n
        for p in sorted(PACKAGE.rglob("*.py"))
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400
    }
    assert too_long == {}
    assert "__class__" not in (PACKAGE / "__init__.py").read_text(encoding="utf-8")


def test_nothing_imports_the_benchmark_harness():
    """bench/ (make bench) lives outside the package: neither nertune nor its tests import it."""
    root = PACKAGE.parents[1]
    offenders = []
    for path in sorted([*PACKAGE.rglob("*.py"), *(root / "tests").glob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and not node.level
                else []
            )
            offenders += [f"{path.relative_to(root)}: {n}" for n in names if n == "bench" or n.startswith("bench.")]
    assert offenders == []
