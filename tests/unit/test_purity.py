"""Architecture rule 1: protocol and decision code does no I/O.

The pure modules import no asyncio, aiohttp or socket, neither directly nor
through the project modules they import (transitively, package ``__init__``
files included). Two independent checks:

- static: parse each module's source (and, transitively, every project module
  it imports) and look at its import statements; imports under
  ``if TYPE_CHECKING:`` do not run and are not counted;
- dynamic: import the module in a fresh interpreter and look at which of the
  forbidden modules it added to ``sys.modules`` (this also catches third-party
  libraries that pull in sockets).

Both checkers are shown to flag ``router.app`` and ``router.wire.client``,
so a passing result means something.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
import test_layers

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ("router", "sentinel", "slotwarden")
FORBIDDEN = frozenset({"asyncio", "aiohttp", "socket"})


def module_path(name: str) -> Path | None:
    base = ROOT.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


# Every module of a pure layer, as `test_layers.LAYERS` declares them (one list, not two).
PURE = sorted(
    name
    for name in test_layers.project_modules(ROOT)
    if (layer := test_layers.layer_of(name)) is not None and layer[2]
)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(tree: ast.AST):
    """Every node except the bodies of ``if TYPE_CHECKING:`` blocks."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def direct_imports(name: str) -> list[tuple[str, int]]:
    """(module, line) for every module that running ``name`` imports."""
    path = module_path(name)
    assert path is not None, f"{name}: no such module under {ROOT}"
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    out: list[tuple[str, int]] = []
    for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            out.append((module, node.lineno))
            for alias in node.names:  # `from router.decide import merge`: router.decide.merge
                sub = f"{module}.{alias.name}"
                if module_path(sub) is not None:
                    out.append((sub, node.lineno))
    return out


def _with_parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def static_violations(root: str) -> list[str]:
    """Chains like ``router.decide.plan -> router.decide.merge -> asyncio (...merge.py:12)``."""
    found: list[str] = []
    seen: set[str] = set()
    todo: list[tuple[str, list[str]]] = [(m, [m]) for m in _with_parents(root)]
    while todo:
        name, chain = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        rel = module_path(name).relative_to(ROOT)  # type: ignore[union-attr]
        for imported, line in direct_imports(name):
            if imported.split(".")[0] in FORBIDDEN:
                found.append(" -> ".join([*chain, imported]) + f" ({rel}:{line})")
            elif imported.split(".")[0] in PROJECT:
                for mod in _with_parents(imported):
                    if mod not in seen and module_path(mod) is not None:
                        todo.append((mod, [*chain, mod]))
    return sorted(set(found))


_PROBE = """
import importlib, json, sys
before = set(sys.modules)
importlib.import_module(sys.argv[1])
added = set(sys.modules) - before
print(json.dumps(sorted(n for n in added if n.split(".")[0] in {forbidden})))
"""


def runtime_violations(module: str) -> list[str]:
    code = _PROBE.format(forbidden=sorted(FORBIDDEN))
    done = subprocess.run(
        [sys.executable, "-c", code, module],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("module", PURE)
def test_pure_module_imports_no_io_statically(module):
    assert static_violations(module) == []


@pytest.mark.parametrize("module", PURE)
def test_pure_module_imports_no_io_at_runtime(module):
    assert runtime_violations(module) == []


# ---------------------------------------------------------------- the checks can fail


def test_static_check_flags_io_modules():
    app = static_violations("router.app")
    assert any(v.startswith("router.app -> asyncio (router/app.py:") for v in app)
    # transitively, through the modules app imports
    assert any(v.startswith("router.app -> router.") and "asyncio" in v for v in app)
    assert any(
        v.startswith("router.wire.client -> asyncio")
        for v in static_violations("router.wire.client")
    )


def test_static_check_ignores_type_checking_imports():
    # router.control.metrics imports prometheus_client's Metric only under TYPE_CHECKING
    imported = {m for m, _ in direct_imports("router.control.metrics")}
    assert "prometheus_client.metrics_core" not in imported
    assert "router.control.routes" in imported and "router.wire.backend" in imported


def test_static_check_follows_from_package_imports():
    # `from router.commands import spec as cmds` must be followed into the submodule
    imported = {m for m, _ in direct_imports("router.decide.plan")}
    assert {"router.commands.spec", "router.decide.merge"} <= imported


def test_runtime_check_flags_io_modules():
    assert {"asyncio", "socket"} <= set(runtime_violations("router.app"))
