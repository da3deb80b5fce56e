"""The layer rule: imports run one way, and nothing imports in a circle.

From the bottom up (README "Code map"; ../shared/ARCHITECTURE.md):

    slotwarden.cluster   the shared model, pure
    slotwarden.resp      the codec and the only home of C, pure
    router.errors → router.commands → router.decide (pure)
        → router.wire → router.control → router.app / router.main
    sentinel.errors → sentinel.decide (pure) → sentinel.act → sentinel.run
        → sentinel.http → sentinel.main / sentinel.status / sentinel.manual
    slotwarden.procs   processes for tests and bench (runs router/sentinel, never imports them)
    slotwarden.dataset, slotwarden.rig   the resharding test's and bench's data and processes
    slotwarden.acl   the backend ACL users (both sides' rules, the passwords hashed)
    slotwarden.keyslot   `slotwarden slot KEY...` (the router's admin API, else the file)
    slotwarden.cacheclient   a caching client driven by CLIENT TRACKING (tests, bench)
    slotwarden.cli, slotwarden.launcher   the command line, wires everything

A module may import its own layer and the layers below it, never one above;
`router` and `sentinel` never import each other; there is no cycle among the
project's modules at all (a cycle inside one layer is still a cycle). Every
import counts, ``if TYPE_CHECKING:`` ones and imports inside functions
included: each stands for real coupling. The pure layers import no asyncio,
aiohttp, socket or uvloop.

The checker is shown to fail on a cycle, an upward import and an impure
import built in a temporary tree, so a pass means something.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("slotwarden", "router", "sentinel")
IO_MODULES = frozenset({"asyncio", "aiohttp", "socket", "uvloop"})

# (prefix, rank, pure). The longest matching prefix decides; a lower rank is a lower layer.
LAYERS: list[tuple[str, int, bool]] = [
    ("slotwarden", 0, True),  # the package __init__: the version, nothing else
    ("slotwarden.cluster", 1, True),
    ("slotwarden.reshard_plan", 1, True),  # reshard/rebalance plans (cli)
    ("slotwarden.slots_edit", 1, True),  # cluster.yaml's slots: lines rewritten (cli)
    ("slotwarden.resp", 2, True),
    ("router", 3, True),  # the package __init__
    ("router.errors", 3, True),
    ("router.commands", 4, True),
    ("router.decide", 5, True),
    ("router.wire", 6, False),
    ("router.control", 7, False),
    ("router.app", 8, False),
    ("router.main", 9, False),
    ("sentinel", 3, True),  # the package __init__
    ("sentinel.errors", 3, True),
    ("sentinel.decide", 4, True),
    ("sentinel.act", 5, False),
    ("sentinel.run", 6, False),
    ("sentinel.http", 7, False),
    ("sentinel.main", 8, False),
    ("sentinel.status", 9, False),
    ("sentinel.manual", 9, False),
    ("sentinel.reshard", 9, False),
    ("sentinel.report", 9, True),  # status's migrations, progress bars, exit code (pure)
    ("slotwarden.procs", 10, False),
    ("slotwarden.dataset", 10, False),
    ("slotwarden.rig", 11, False),
    ("slotwarden.launcher", 10, False),
    ("slotwarden.acl", 10, False),
    ("slotwarden.keyslot", 10, False),
    ("slotwarden.cacheclient", 10, False),  # a caching client driven by CLIENT TRACKING
    ("slotwarden.cli", 11, False),
    ("slotwarden.reshard_cli", 11, False),  # reshard/rebalance arguments (cli)
    ("slotwarden.__main__", 12, False),
]


def layer_of(module: str) -> tuple[str, int, bool] | None:
    best = None
    for prefix, rank, pure in LAYERS:
        if (module == prefix or module.startswith(prefix + ".")) and (
            best is None or len(prefix) > len(best[0])
        ):
            best = (prefix, rank, pure)
    return best


def project_modules(root: Path) -> dict[str, Path]:
    mods: dict[str, Path] = {}
    for pkg in PACKAGES:
        for f in sorted((root / pkg).rglob("*.py")):
            parts = list(f.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = f
    return mods


def _is_extension(package_init: Path, dotted: str) -> bool:
    return (package_init.parent / (dotted.rpartition(".")[2] + ".c")).is_file()


def imports_of(name: str, path: Path, mods: dict[str, Path]) -> tuple[set[str], set[str]]:
    """(project modules, top-level third-party/stdlib names) that ``name`` imports,
    anywhere in the file."""
    is_package = path.name == "__init__.py"
    package = name.split(".") if is_package else name.split(".")[:-1]
    found: set[str] = set()
    external: set[str] = set()

    def resolve(dotted: str) -> str | None:
        while dotted:
            if dotted in mods:
                return dotted
            dotted = dotted.rpartition(".")[0]
        return None

    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        candidates: list[str] = []
        if isinstance(node, ast.Import):
            candidates = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                mod = ".".join([*base, *([node.module] if node.module else [])])
            else:
                mod = node.module or ""
            # `from pkg import sub` imports the submodule when there is one
            subs = [f"{mod}.{a.name}" for a in node.names]
            candidates = [s for s in subs if s in mods]
            # a C extension built from `<name>.c` beside the package is not the package
            native = [s for s in subs if mod in mods and _is_extension(mods[mod], s)]
            if len(candidates) + len(native) < len(subs):  # names defined by `mod` itself
                candidates.append(mod)
        for cand in candidates:
            target = resolve(cand)
            if target is None:
                external.add(cand.split(".")[0])
            elif target != name:
                found.add(target)
    return found, external


def graph(root: Path) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    mods = project_modules(root)
    edges: dict[str, set[str]] = {}
    external: dict[str, set[str]] = {}
    for name, path in mods.items():
        edges[name], external[name] = imports_of(name, path, mods)
    return edges, external


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            v, it = work[-1]
            advanced = False
            for w in it:
                if w not in edges:
                    continue
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(edges[w]))))
                    advanced = True
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def violations(root: Path) -> list[str]:
    edges, external = graph(root)
    problems = [f"import cycle: {' <-> '.join(c)}" for c in cycles(edges)]
    for mod in sorted(edges):
        layer = layer_of(mod)
        if layer is None:
            problems.append(f"{mod}: in no layer (add it to LAYERS and the README's code map)")
            continue
        top = mod.split(".")[0]
        for target in sorted(edges[mod]):
            other = {top, target.split(".")[0]}
            if other == {"router", "sentinel"}:
                problems.append(f"{mod} imports {target}: router and sentinel never meet")
                continue
            tlayer = layer_of(target)
            if tlayer is not None and tlayer[1] > layer[1]:
                problems.append(
                    f"{mod} ({layer[0]}) imports {target} ({tlayer[0]}), a higher layer"
                )
        if layer[2]:
            for name in sorted(external[mod] & IO_MODULES):
                problems.append(f"{mod} is in a pure layer ({layer[0]}) but imports {name}")
    return problems


def test_layers_hold() -> None:
    assert violations(ROOT) == []


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        f = tmp_path / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
    for pkg in PACKAGES:
        (tmp_path / pkg).mkdir(exist_ok=True)
        (tmp_path / pkg / "__init__.py").touch()
    return tmp_path


def test_checker_finds_a_cycle(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "router/wire/__init__.py": "",
            "router/wire/a.py": "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from router.wire import b\n",
            "router/wire/b.py": "def f():\n    from router.wire.a import x\n",
        },
    )
    assert violations(root) == ["import cycle: router.wire.a <-> router.wire.b"]


def test_checker_finds_an_upward_import(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "router/decide/__init__.py": "",
            "router/decide/plan.py": "from router.control import watch\n",
            "router/control/__init__.py": "",
            "router/control/watch.py": "",
        },
    )
    assert violations(root) == [
        "router.decide.plan (router.decide) imports router.control.watch (router.control), "
        "a higher layer"
    ]


def test_checker_finds_router_sentinel_imports_and_impure_modules(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "sentinel/decide/__init__.py": "",
            "sentinel/decide/x.py": "import asyncio\nfrom router.errors import RouterError\n",
            "router/errors.py": "",
        },
    )
    assert violations(root) == [
        "sentinel.decide.x imports router.errors: router and sentinel never meet",
        "sentinel.decide.x is in a pure layer (sentinel.decide) but imports asyncio",
    ]
