"""The package's shape holds by itself (docs/architecture.md).

Every module of ``nepzbl_plugin`` is parsed with ``ast`` (imports inside functions too, relative
imports resolved) and

* no import goes upward: cli -> features (train, audit, md, analysis, al, zbl, demo) ->
  calculators -> engine -> model -> io, with interop beside the model and errors, elements,
  layout, progress and checks at the bottom; modules of one part import each other freely, and
  the features import each other sideways;
* the imports between modules have no cycle;
* nothing outside ``nepzbl_plugin/cli/`` calls ``print`` or imports tqdm.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nepzbl_plugin"
ROOT = "nepzbl_plugin"

# part -> rank; an import may go to a lower rank or stay within its part (the features are one
# part: they import each other sideways, the cycle check keeps that acyclic). The compiled
# bridges _core and _cuda sit between the model and the engine.
RANKS = {"bottom": 0, "io": 1, "model": 2, "interop": 3, "bridge": 3, "engine": 4,
         "calculators": 5, "features": 6, "cli": 7}
PARTS = {
    "errors": "bottom", "elements": "bottom", "layout": "bottom", "progress": "bottom",
    "checks": "bottom",
    "io": "io",
    "model": "model", "neighbours": "model", "": "model",  # "": the package's __init__
    "interop": "interop", "testing": "interop",
    "_core": "bridge", "_cuda": "bridge",
    "engine": "engine",
    "calculators": "calculators", "nep": "calculators",
    "train": "features", "audit": "features", "md": "features", "analysis": "features",
    "al": "features", "zbl": "features", "demo": "features",
    "cli": "cli", "__main__": "cli",
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, tuple[Path, ast.Module]]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        out[_module_name(path)] = (path, ast.parse(path.read_text(encoding="utf-8"), str(path)))
    return out


MODULES = _modules()
KNOWN = set(MODULES) | {f"{ROOT}._core", f"{ROOT}._cuda"}


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str) -> list[tuple[str, int]]:
    """(imported nepzbl_plugin module, line) of every import in ``module``, at any depth; for
    ``from X import name`` the submodule X.name when there is one."""
    path, tree = MODULES[module]
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, is_package, node)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in KNOWN else base
                       for alias in node.names]
        else:
            continue
        for target in targets:
            if target == ROOT or target.startswith(ROOT + "."):
                found.append((target, node.lineno))
    return found


def _part(module: str) -> str:
    rest = module[len(ROOT) + 1:] if module != ROOT else ""
    head = rest.split(".")[0]
    if head not in PARTS:
        raise AssertionError(f"{module}: no part in docs/architecture.md; add it to PARTS "
                             "(tests/test_architecture.py) and to the document")
    return PARTS[head]


def test_every_module_has_a_part():
    for module in MODULES:
        _part(module)


def test_no_upward_import():
    problems = []
    for module in MODULES:
        part = _part(module)
        for target, line in _imports(module):
            other = _part(target)
            if other == part or RANKS[other] < RANKS[part]:
                continue
            problems.append(f"{MODULES[module][0].relative_to(PACKAGE.parent)}:{line}: "
                            f"{module} ({part}) imports {target} ({other})")
    assert not problems, "upward imports:\n" + "\n".join(problems)


def test_no_import_cycle():
    graph = {m: sorted({t for t, _ in _imports(m) if t in MODULES and t != m}) for m in MODULES}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str):
        state[node] = 1
        stack.append(node)
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)


def test_only_the_command_line_prints_or_draws():
    problems = []
    for module, (path, tree) in MODULES.items():
        if _part(module) == "cli":
            continue
        where = path.relative_to(PACKAGE.parent)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id == "print"):
                problems.append(f"{where}:{node.lineno}: print(")
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            if any(n == "tqdm" or n.startswith("tqdm.") for n in names):
                problems.append(f"{where}:{node.lineno}: imports tqdm")
    assert not problems, "only nepzbl_plugin/cli/ prints or draws:\n" + "\n".join(problems)


def test_the_checks_see_function_level_and_relative_imports():
    """The parser resolves ``from ..x import y`` inside a function to the module it names."""
    # engine.cpu imports the C bridge only inside functions
    assert any(target == f"{ROOT}._core" for target, _ in _imports(f"{ROOT}.engine.cpu"))
    tree = ast.parse("def f():\n    from ..engine import base\n    from .. import layout\n")
    nodes = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert _resolve(f"{ROOT}.train.trainer", False, nodes[0]) == f"{ROOT}.engine"
    assert _resolve(f"{ROOT}.train", True, nodes[1]) == ROOT
