"""The package layout is the architecture: each folder is a layer and imports only go downward."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "vtpu_cli"

# bottom to top; layers on the same rank may not import each other
RANK = {
    "core": 0,
    "isa": 1,
    "binary": 2,
    "asm": 3,
    "machine": 4,
    "fleet": 5,
    "engines": 6,
    "compiler": 7,
    "cluster": 7,
    "bench": 8,
    "pod": 8,
    "models": 9,
    "serve": 10,
    "cli": 12,
    "api": 11,
}


def _imports(path: Path) -> list[tuple[str, int]]:
    """Every ``vtpu_cli.*`` module imported by ``path`` (top-level and lazy), with its line."""
    out = []
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {  # `if TYPE_CHECKING:` imports are for annotations and never run
        id(n)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and getattr(block.test, "id", "") == "TYPE_CHECKING"
        for n in ast.walk(block)
    }
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.startswith("vtpu_cli."):
                base = PKG.joinpath(*node.module.split(".")[1:])
                for a in node.names:  # `from pkg import submodule` imports the submodule
                    sub = base / f"{a.name}.py"
                    out.append((f"{node.module}.{a.name}" if sub.exists() else node.module, node.lineno))
        elif isinstance(node, ast.ImportFrom) and node.level:
            out.append(("<relative>", node.lineno))
        elif isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names if a.name.startswith("vtpu_cli.")]
    return out


def _layer(module: str) -> str:
    return module.split(".")[1]


def test_every_module_is_in_a_known_layer():
    stray = [p.name for p in PKG.glob("*.py") if p.name not in ("__init__.py", "__main__.py", "api.py")]
    assert stray == [], f"modules outside a layer folder: {stray}"
    folders = {p.name for p in PKG.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders - {"grammar"} <= set(RANK), folders - set(RANK)


def test_imports_only_go_downward():
    bad = []
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG)
        if len(rel.parts) == 1:
            continue
        me = rel.parts[0]
        if me not in RANK:
            continue
        for mod, line in _imports(path):
            if mod == "<relative>":
                bad.append(f"{rel}:{line}: relative import (use vtpu_cli.<layer>...)")
                continue
            other = _layer(mod)
            if other != me and other in RANK and RANK[other] >= RANK[me]:
                bad.append(f"{rel}:{line}: {me} (rank {RANK[me]}) imports {mod} (rank {RANK[other]})")
    assert bad == [], "\n".join(bad)


def test_no_import_cycles_between_modules():
    """Module-level graph (lazy imports included) has no cycles."""
    graph: dict[str, set[str]] = {}
    for path in PKG.rglob("*.py"):
        name = "vtpu_cli." + ".".join(path.relative_to(PKG).with_suffix("").parts)
        name = name.removesuffix(".__init__")
        graph[name] = {m for m, _ in _imports(path) if m != "<relative>"}
    mods = set(graph)
    for k in graph:  # an import of a package is an import of its __init__
        graph[k] = {m for m in graph[k] if m in mods and m != k}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for x in sorted(graph[m]):
            if state.get(x) == 1:
                return stack[stack.index(x) :] + [x]
            if x not in state:
                cyc = visit(x)
                if cyc:
                    return cyc
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            cyc = visit(m)
            assert cyc is None, " -> ".join(cyc)
