"""Architecture rules, checked on the source with :mod:`ast` (nothing is imported).

Every ``import`` statement of every module of ``gtlomics/`` counts, wherever it is: at the top,
inside a function, or under ``if TYPE_CHECKING:``. An import is an edge from the importing module
to the module it names: ``from gtlomics.expression import GeneVocab`` is an edge to
``gtlomics/expression/__init__.py`` (module ``gtlomics.expression``), while
``from gtlomics.expression import vocab`` is an edge to ``gtlomics/expression/vocab.py`` because
that submodule exists. The rules:

* no import cycles between modules;
* no private name (``_name``, not a dunder) imported from another module: a helper two modules
  share is public, or lives in a third module both import;
* the layers of ``docs/architecture.md`` import one way only, downwards.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "gtlomics"

# Top-level packages and modules of gtlomics, lowest layer first (docs/architecture.md, "Layers
# and import direction"). A module may import its own top-level package and any lower layer;
# packages that share a layer do not import each other. ``corpus`` (every .h5ad read, the chunk
# protocol pre-training streams) sits below ``train``; ``__main__`` (``python -m gtlomics``)
# above the command line. ``gtlomics/__init__.py`` is the lazy facade above all of them.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("_version",),
    ("expression", "datasets", "linear", "nn"),
    ("scouts",),
    ("corpus",),
    ("train",),
    ("plotting",),
    ("foundation",),
    ("classifier",),
    ("evaluation",),
    ("cli",),
    ("__main__",),
)


@cache
def module_files() -> dict[str, Path]:
    """Dotted module name → source file, for every module of the package (``__init__`` too)."""
    modules = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _is_package(module: str) -> bool:
    return module_files()[module].name == "__init__.py"


def _absolute(node: ast.ImportFrom, module: str) -> str:
    """The absolute module a ``from ... import`` names, relative imports resolved."""
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not _is_package(module):
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _existing(name: str) -> str | None:
    """``name`` or its longest prefix that is a module of the package."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in module_files():
            return candidate
        parts.pop()
    return None


def imports_of(module: str) -> Iterator[tuple[str, str | None]]:
    """``(target module, imported name or None)`` for every gtlomics import in ``module``."""
    tree = ast.parse(module_files()[module].read_text(), filename=str(module_files()[module]))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = _existing(alias.name)
                if target is not None:
                    yield target, None
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(node, module)
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                if submodule in module_files():
                    yield submodule, None
                elif (target := _existing(source)) is not None:
                    yield target, alias.name


@cache
def import_graph() -> dict[str, frozenset[str]]:
    """Module → the other package modules it imports."""
    return {
        module: frozenset(target for target, _ in imports_of(module) if target != module)
        for module in module_files()
    }


def import_cycles(graph: dict[str, frozenset[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    lowlink: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = lowlink[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                visit(successor)
                lowlink[node] = min(lowlink[node], lowlink[successor])
            elif successor in on_stack:
                lowlink[node] = min(lowlink[node], index[successor])
        if lowlink[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(cycles)


def _top_level(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _layer_of(top_level: str) -> int:
    for rank, layer in enumerate(LAYERS):
        if top_level in layer:
            return rank
    raise AssertionError(f"gtlomics.{top_level} is in no layer; add it to LAYERS.")


def test_no_import_cycles():
    cycles = import_cycles(import_graph())
    assert not cycles, "import cycles between gtlomics modules:\n" + "\n".join(
        "  " + " <-> ".join(cycle) for cycle in cycles
    )


def test_no_private_names_imported_across_modules():
    found = [
        f"  {module} imports {name} from {target}"
        for module in module_files()
        for target, name in imports_of(module)
        if name and name.startswith("_") and not name.startswith("__") and target != module
    ]
    assert not found, "private names imported from another module:\n" + "\n".join(found)


def test_layers_import_downwards_only():
    upward = []
    for module, targets in import_graph().items():
        source = _top_level(module)
        if not source:  # the package's lazy facade
            continue
        for target in sorted(targets):
            above = _top_level(target)
            if above != source and (not above or _layer_of(above) >= _layer_of(source)):
                upward.append(f"  {module} imports {target}")
    assert not upward, "imports that do not go down the layers:\n" + "\n".join(upward)


def test_the_checker_sees_cycles_and_package_modules():
    graph = {"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset({"a"}), "d": frozenset()}
    assert import_cycles(graph) == [["a", "b", "c"]]
    vocab = dict(imports_of("gtlomics.expression.vocab"))
    assert "gtlomics.expression.ids" in vocab  # a submodule, not the package's __init__
    assert _absolute(ast.parse("from . import vocab").body[0], "gtlomics.expression") == (
        "gtlomics.expression"
    )
