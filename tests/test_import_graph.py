"""The package's import graph runs one way: cli -> pipelines -> stages -> io/schemas/errors.

Every module is parsed with ``ast`` and every import counts, also those inside functions:
a cycle hidden behind a function-level import is still a cycle a reader has to untangle.
"""

from __future__ import annotations

import ast
import itertools
from collections import defaultdict
from pathlib import Path

import recapture

PACKAGE = Path(recapture.__file__).parent
#: Bottom layer: these import no other part of recapture (but ``progress``/``__init__``).
FOUNDATION = {"errors", "io", "schemas", "progress", "loader", "workers"}
#: Only these may import the orchestrator.
ORCHESTRATOR_USERS = {"cli", "__main__", "pipelines"}


def _unit(parts: tuple[str, ...]) -> str:
    """The subpackage (or top-level module) a dotted name ``recapture.x.…`` belongs to."""
    return parts[1] if len(parts) > 1 else "__init__"


def _edges() -> dict[str, dict[str, list[str]]]:
    edges: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    units = {p.stem for p in PACKAGE.glob("*.py")} | {
        p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()
    }
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = rel.parts[:-1] if rel.parts[-1] == "__init__" else rel.parts
        package = parts if rel.parts[-1] == "__init__" else parts[:-1]
        source = _unit(parts)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = list(package[: len(package) - node.level + 1]) if node.level else []
                module = ".".join(base + ([node.module] if node.module else []))
                targets = [module] + [f"{module}.{a.name}" for a in node.names]
            else:
                continue
            for target in targets:
                bits = tuple(target.split("."))
                if bits[0] != "recapture" or len(bits) < 2 or bits[1] not in units:
                    continue
                if bits[1] != source:
                    edges[source][bits[1]].append(f"{'/'.join(rel.parts)}.py:{node.lineno}")
    return edges


def _cycle(edges: dict[str, dict[str, list[str]]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, {})):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_graph_is_found():
    edges = _edges()
    assert "persons" in edges["pipelines"]
    assert "persons" in edges["uncertainty"]


def test_subpackage_imports_are_acyclic():
    edges = _edges()
    cycle = _cycle(edges)
    if cycle:
        where = [f"{a} -> {b}: {edges[a][b][:3]}" for a, b in itertools.pairwise(cycle)]
        raise AssertionError("import cycle " + " -> ".join(cycle) + "\n" + "\n".join(where))


def test_no_stage_imports_the_orchestrator():
    edges = _edges()
    offenders = {
        source: targets["pipelines"]
        for source, targets in edges.items()
        if "pipelines" in targets and source not in ORCHESTRATOR_USERS
    }
    assert not offenders


def test_foundation_imports_no_stage():
    edges = _edges()
    offenders = {
        source: sorted(set(targets) - FOUNDATION - {"__init__"})
        for source, targets in edges.items()
        if source in FOUNDATION and set(targets) - FOUNDATION - {"__init__"}
    }
    assert not offenders
