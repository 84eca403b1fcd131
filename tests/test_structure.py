"""The layout rules of docs/ARCHITECTURE.md, checked on the source tree (no imports are run).

- arrows: ``theory`` imports neither ``simulate`` nor ``validate``; ``simulate`` imports no
  ``validate``, and from ``theory`` only the problem definition (problem, activations, data);
- no import cycles between modules (a package's ``__init__`` is a module);
- no private name (``_x``) imported from another module of the project.

Each rule is also run on a small planted tree, so a rule that can never fire is caught.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("theory", "simulate", "validate")
SIMULATE_MAY_USE = {"theory", "theory.problem", "theory.activations", "theory.data"}


def modules(root: Path, packages=PACKAGES) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under the packages."""
    out = {}
    for pkg in packages:
        for f in sorted((root / pkg).rglob("*.py")):
            parts = list(f.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = f
    return out


def _package_of(name: str, path: Path) -> str:
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def imports(mods: dict[str, Path]) -> list[tuple[str, str, str, int]]:
    """``(importer, imported module, imported name or '', line)`` for imports of project modules.

    ``from a.b import c`` names the module ``a.b.c`` when that is a module, else ``a.b`` (with the
    name ``c``). Imports inside functions count: they are still dependencies.
    """
    edges = []
    for name, path in mods.items():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name in mods or a.name.split(".")[0] in PACKAGES:
                        edges.append((name, a.name, "", node.lineno))
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = _package_of(name, path).split(".")
                    base = base[: len(base) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if target.split(".")[0] not in PACKAGES:
                    continue
                for a in node.names:
                    sub = f"{target}.{a.name}"
                    if sub in mods:
                        edges.append((name, sub, "", node.lineno))
                    else:
                        edges.append((name, target, a.name, node.lineno))
    return edges


def cycles(edges) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    graph: dict[str, set[str]] = {}
    for a, b, _, _ in edges:
        if a != b:
            graph.setdefault(a, set()).add(b)
            graph.setdefault(b, set())
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def private(edges) -> list[str]:
    return [f"{a}:{line} imports {name} from {b}" for a, b, name, line in edges
            if name.startswith("_") and not name.startswith("__") and a != b]


def wrong_way(edges) -> list[str]:
    bad = []
    for a, b, _, line in edges:
        src, dst = a.split(".")[0], b.split(".")[0]
        if src == "theory" and dst in ("simulate", "validate"):
            bad.append(f"{a}:{line} imports {b}")
        elif src == "simulate" and (dst == "validate" or (dst == "theory" and b not in SIMULATE_MAY_USE)):
            bad.append(f"{a}:{line} imports {b}")
    return bad


@pytest.fixture(scope="module")
def edges():
    return imports(modules(ROOT))


def test_the_tree_is_found(edges):
    mods = modules(ROOT)
    assert {"theory", "theory.solve", "simulate.train", "validate.cli"} <= set(mods)
    assert len(edges) > 100


def test_arrows_run_one_way(edges):
    assert wrong_way(edges) == []


def test_no_import_cycles(edges):
    assert cycles(edges) == []


def test_no_private_names_across_modules(edges):
    assert private(edges) == []


def test_the_rules_fire_on_a_planted_tree(tmp_path):
    """A tree with one cycle, one private import and two wrong-way imports: each rule reports it."""
    files = {
        "theory/__init__.py": "from .a import f\n",
        "theory/a.py": "from .b import g\ndef f(): pass\n",
        "theory/b.py": "from . import a\nfrom validate import report\ndef g(): pass\n",
        "simulate/__init__.py": "",
        "simulate/train.py": "from theory.a import _helper\nimport theory.b\n",
        "validate/__init__.py": "",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    e = imports(modules(tmp_path))
    assert cycles(e) == [["theory.a", "theory.b"]]
    assert private(e) == ["simulate.train:1 imports _helper from theory.a"]
    assert sorted(wrong_way(e)) == ["simulate.train:1 imports theory.a", "simulate.train:2 imports theory.b",
                                    "theory.b:2 imports validate"]
