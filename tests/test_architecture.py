"""The package's shape (docs/architecture.md): no import cycle between subpackages, small modules, imports at
the top, the switch on the kind of run in mmaml/kinds.py alone, and the import graph the docs show."""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "mmaml"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"
MAX_LINES = 400


def _modules():
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        yield path, ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _unit(module: str) -> str:
    """The subpackage (or top-level module) a module belongs to: mmaml.rl.envs.base -> rl, mmaml.kinds -> kinds."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "mmaml"


def _imports(path: Path, module: str):
    """``(imported module, node, at top level)`` for every import of an mmaml module in ``path``."""
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            name = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([name] if name else []))
            if name.startswith("mmaml"):
                yield name, node, id(node) in top
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("mmaml"):
                    yield alias.name, node, id(node) in top


def import_graph() -> dict[str, set[str]]:
    """``{unit: units it imports}`` over src/mmaml, the package's own ``__init__`` and ``__main__`` left out."""
    graph: dict[str, set[str]] = defaultdict(set)
    for path, module in _modules():
        source = _unit(module)
        if source in ("mmaml", "__main__"):
            continue
        for name, _, _ in _imports(path, module):
            target = _unit(name)
            if target != source and target != "mmaml":
                graph[source].add(target)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path + [node, nxt]
            if nxt not in state:
                found = visit(nxt, path + [node])
                if found:
                    return found
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node, [])
            if found:
                return found
    return None


def test_no_import_cycle_between_subpackages():
    assert _cycle(import_graph()) is None


def test_a_cycle_is_found_when_there_is_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) is not None
    assert _cycle({"a": {"b"}, "b": {"c"}}) is None


def test_rl_imports_only_core_and_engine():
    assert import_graph()["rl"] <= {"core", "engine", "errors"}


def test_no_module_over_the_line_limit():
    long = {str(p.relative_to(SRC)): n for p, _ in _modules() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long


def test_imports_of_the_package_sit_at_module_top_or_say_why():
    """An import inside a function is allowed only with a comment on the line before saying why."""
    hidden = []
    for path, module in _modules():
        lines = path.read_text().splitlines()
        for _, node, at_top in _imports(path, module):
            guarded = node.col_offset == 0  # e.g. under `if TYPE_CHECKING:` at module level
            if not at_top and not guarded and not lines[node.lineno - 2].strip().startswith("#"):
                hidden.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert not hidden


KIND_SWITCH = re.compile(r"(?<!self)\.task\s*[!=]=\s*[\"']|isinstance\([^)]*(RegressionConfig|ClassificationConfig|RLConfig)")


def test_only_kinds_switches_on_the_kind_of_run():
    switches = [f"{p.relative_to(SRC)}:{i}" for p, _ in _modules() if p.name != "kinds.py"
                for i, line in enumerate(p.read_text().splitlines(), 1) if KIND_SWITCH.search(line)]
    assert not switches


def test_the_docs_show_the_import_graph_as_it_is():
    """docs/architecture.md lists each unit's imports as ``unit -> a, b``; they must be the real ones."""
    shown = {}
    for line in DOCS.read_text().splitlines():
        match = re.fullmatch(r"\s*([a-z_]+)\s+->\s+([a-z_, ]+)", line)
        if match:
            shown[match[1]] = {t.strip() for t in match[2].split(",")}
    assert shown == {k: v for k, v in import_graph().items() if v}
