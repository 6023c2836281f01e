"""The architecture's layering, read from the imports of engine/ and analysis/ (every import
statement, inside functions and ``TYPE_CHECKING`` blocks too).

Imports run downward only: the CLI on top; the API and the console's backend; ``runtime`` (the
wiring); the parts it wires; ``data``; and at the ground ``config`` and the pure statistics of
``analysis``.  Parts of the middle layer may import each other; nowhere else may a part import
one of its own layer.  A new part must be given a layer here.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from tests.conftest import REPO_ROOT

LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"engine.cli"}),
    frozenset({"engine.api", "engine.console"}),
    frozenset({"engine.runtime"}),
    frozenset({"engine.serving", "engine.experiments", "engine.events", "engine.models", "engine.storage",
               "engine.monitoring", "engine.simulator"}),
    frozenset({"engine.data"}),
    frozenset({"engine.config", "engine.local_processes", "analysis"}),
)
SIBLINGS_MAY_IMPORT = frozenset({3})  # the parts runtime wires use each other (serving uses storage, ...)
JUNK_DRAWER_NAMES = frozenset({"ops", "utils", "helpers", "common"})
PYTHON_FOLDERS = ("engine", "analysis", "pages", "bench", "tests")


@dataclass(frozen=True)
class Import:
    source: str  # the importing module's part
    target: str  # the imported module's part
    where: str  # file:line

    def __str__(self) -> str:
        return f"{self.where}: {self.source} imports {self.target}"


def part(module: str) -> str | None:
    """``engine.serving.cache.l1`` → ``engine.serving``; ``analysis.stats`` → ``analysis``; else None."""
    names = module.split(".")
    if names[0] == "analysis":
        return "analysis"
    if names[0] == "engine" and len(names) > 1:
        return f"engine.{names[1]}"
    return None  # a library, or the bare ``engine`` package (its __init__ holds only the version)


def module_name(path: Path) -> str:
    names = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    return ".".join(names[:-1] if names[-1] == "__init__" else names)


def imported_modules(path: Path) -> Iterator[tuple[str, int]]:
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from ((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            # relative: from the package, up level - 1 folders
            base = package[: len(package) - node.level + 1] if node.level else []
            module = [*base, *([node.module] if node.module else [])]
            # each name may be a module itself: ``from engine import config``
            yield from ((".".join([*module, alias.name]) if alias.name != "*" else ".".join(module), node.lineno)
                        for alias in node.names)


@cache
def imports() -> tuple[Import, ...]:
    """Every import from one part into another."""
    found = []
    for top in ("engine", "analysis"):
        for path in sorted((REPO_ROOT / top).rglob("*.py")):
            source = part(module_name(path))
            for module, line in imported_modules(path):
                target = part(module)
                if source and target and target != source:
                    found.append(Import(source, target, f"{path.relative_to(REPO_ROOT)}:{line}"))
    return tuple(found)


def layer(name: str) -> int:
    return next(i for i, parts in enumerate(LAYERS) if name in parts)


def engine_parts() -> set[str]:
    return {f"engine.{p.stem}" for p in (REPO_ROOT / "engine").iterdir()
            if (p.is_dir() and (p / "__init__.py").exists()) or (p.suffix == ".py" and p.stem != "__init__")} - {
        "engine.__main__"}


def test_the_import_reader_sees_the_known_edges() -> None:
    # a reader that found nothing would pass every rule below
    edges = {(i.source, i.target) for i in imports()}
    assert {("engine.cli", "engine.runtime"), ("engine.serving", "engine.storage"), ("engine.models", "engine.data"),
            ("engine.console", "analysis")} <= edges


def test_every_part_has_a_layer() -> None:
    placed = set().union(*LAYERS)
    assert engine_parts() | {"analysis"} == placed, "place a new part in LAYERS (or remove a gone one)"


def test_imports_run_downward_only() -> None:
    upward = [str(i) for i in imports()
              if layer(i.target) < layer(i.source)
              or (layer(i.target) == layer(i.source) and layer(i.source) not in SIBLINGS_MAY_IMPORT)]
    assert not upward, "imports against the layering:\n" + "\n".join(upward)


def test_analysis_imports_nothing_from_the_engine() -> None:
    assert not [str(i) for i in imports() if i.source == "analysis"]


def test_data_imports_only_config_from_the_engine() -> None:
    assert not [str(i) for i in imports() if i.source == "engine.data" and i.target.startswith("engine.")
                and i.target != "engine.config"]


def test_only_the_cli_imports_the_cli() -> None:
    assert not [str(i) for i in imports() if i.target == "engine.cli"]


def test_runtime_and_the_parts_below_import_neither_the_console_nor_the_api() -> None:
    assert not [str(i) for i in imports() if i.target in ("engine.console", "engine.api")
                and layer(i.source) >= layer("engine.runtime")]


def cycles(edges: set[tuple[str, str]]) -> list[tuple[str, str]]:
    """Pairs of parts that reach each other through imports."""
    reach = {a: {b for x, b in edges if x == a} for a, _ in edges}
    changed = True
    while changed:
        changed = False
        for targets in reach.values():
            more = set().union(*(reach.get(b, set()) for b in targets)) - targets
            if more:
                targets |= more
                changed = True
    return sorted((a, b) for a in reach for b in reach[a] if a < b and a in reach.get(b, set()))


def test_the_middle_parts_import_each_other_without_a_cycle() -> None:
    middle = {(i.source, i.target) for i in imports() if layer(i.source) == layer(i.target) == 3}
    assert not cycles(middle)


def test_no_module_is_named_like_a_junk_drawer() -> None:
    found = [str(p.relative_to(REPO_ROOT)) for folder in PYTHON_FOLDERS for p in (REPO_ROOT / folder).rglob("*")
             if p.stem in JUNK_DRAWER_NAMES and (p.suffix == ".py" or p.is_dir()) and "__pycache__" not in p.parts]
    assert not found, f"name these for what they do: {found}"


def test_the_engine_never_imports_streamlit() -> None:
    # the console's pages are the only Streamlit code; the engine runs in the API and the CLI too
    found = [f"{path.relative_to(REPO_ROOT)}:{line}" for top in ("engine", "analysis")
             for path in (REPO_ROOT / top).rglob("*.py")
             for module, line in imported_modules(path) if module.split(".")[0] == "streamlit"]
    assert not found
