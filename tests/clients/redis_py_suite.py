"""redis-py's own test suite (v8.1.0, the installed version) through the router.

Fetches redis-py's sdist with pip (``pip download --no-binary :all: --no-deps``) into a
cache dir, runs its standalone tests of the modules in ``MODULES`` with ``--redis-url``
at a server, and reads the outcome of every test from a JUnit XML report. The test
(``test_redis_py_suite.py``) runs it at one bare redis-server and at the router over
three shards: every test that passes at the server must pass through the router,
except those in ``EXPECTED`` - each with the reason it cannot work through a router.

As a script, it prints both runs' counts and the router's failures grouped:

    .venv/bin/python tests/clients/redis_py_suite.py --server-port P --router-port R

``--tolerate-info`` patches the suite's session start so that it runs even when the
router's INFO lacks ``arch_bits``/``cluster_enabled`` (main before issue 12 item 2).
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import os
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

VERSION = "8.1.0"
MODULES = [
    "tests/test_commands.py",
    "tests/test_pipeline.py",
    "tests/test_pubsub.py",
    "tests/test_scripting.py",
    "tests/test_lock.py",
    "tests/test_function.py",
    "tests/test_encoding.py",
    "tests/test_hash.py",
]
PIP = (sys.executable, "-m", "pip")
MARKERS = "not onlycluster and not redismod and not ssl and not replica"

# Tests that pass against one redis-server and cannot pass through a router, with the
# reason (docs/compatibility.md lists the same). Patterns are fnmatch'ed on node ids.
EXPECTED: dict[str, str] = {
    # -- another database: the router serves db 0 only (SELECT 0 is accepted)
    "tests/test_commands.py::TestRedisCommands::test_select": "SELECT of another db",
    "tests/test_commands.py::TestRedisCommands::test_move": "MOVE to another db",
    "tests/test_commands.py::TestRedisCommands::test_swapdb": "SWAPDB: one db only",
    "tests/test_commands.py::TestRedisCommands::test_copy_and_replace_to_another_db": (
        "COPY ... DB: one db only"
    ),
    # -- ACL writes: router users come from cluster.yaml, never from clients
    "tests/test_commands.py::TestRedisCommands::test_acl_*": "ACL: router users are "
    "configured in cluster.yaml; ACL SETUSER/DELUSER/LOG are refused",
    "tests/test_commands.py::TestRedisCommands::test_auth": "ACL SETUSER needed to create "
    "the user it authenticates as",
    # -- moves between shards: no design can keep them atomic across a failure half-way
    "tests/test_commands.py::TestRedisCommands::test_rename": "RENAME across shards",
    "tests/test_commands.py::TestRedisCommands::test_renamenx": "RENAMENX across shards",
    "tests/test_commands.py::TestRedisCommands::test_copy*": "COPY across shards",
    "tests/test_commands.py::TestRedisCommands::test_smove": "SMOVE across shards",
    "tests/test_commands.py::TestRedisCommands::test_lmove": "LMOVE across shards",
    "tests/test_commands.py::TestRedisCommands::test_rpoplpush": "RPOPLPUSH across shards",
    "tests/test_commands.py::TestRedisCommands::test_msetnx": "MSETNX across shards",
    "tests/test_commands.py::TestRedisCommands::test_lists_with_*_keys": (
        "LMOVE list_src list_dest and SMOVE set_src set_dest across shards"
    ),
    # -- WATCH over keys of several shards ("a" and "b"), or WATCH on one shard and
    # MULTI commands for another: a later shard's watch could fail after an earlier
    # shard committed, so the router refuses it (README, "How each command is routed")
    "tests/test_pipeline.py::TestPipeline::test_watch_*": "WATCH over several shards",
    "tests/test_pipeline.py::TestPipeline::test_unwatch": "WATCH over several shards",
    "tests/test_pipeline.py::TestPipeline::test_transaction_callable": (
        "WATCH over several shards"
    ),
    # -- blocking commands over keys of several shards
    "tests/test_commands.py::TestRedisCommands::test_blmove": "BLMOVE across shards",
    "tests/test_commands.py::TestRedisCommands::test_blpop": "BLPOP over a and b",
    "tests/test_commands.py::TestRedisCommands::test_brpop": "BRPOP over a and b",
    "tests/test_commands.py::TestRedisCommands::test_blmpop": "BLMPOP over several shards",
    "tests/test_commands.py::TestRedisCommands::test_bzpopmax": "BZPOPMAX over a and b",
    "tests/test_commands.py::TestRedisCommands::test_bzpopmin": "BZPOPMIN over a and b",
    "tests/test_commands.py::TestRedisCommands::test_bzmpop": "BZMPOP over several shards",
    # -- the topology is the sentinels'; users are cluster.yaml's
    "tests/test_commands.py::TestRedisCommands::test_replicaof": "REPLICAOF: sentinels' job",
    "tests/test_commands.py::TestRedisCommands::test_client_kill_filter_by_user": (
        "needs ACL SETUSER"
    ),
    "tests/test_commands.py::TestRedisCommands::test_brpoplpush*": "BRPOPLPUSH across shards",
    # -- by choice or not yet (docs/compatibility.md, second table)
    "tests/test_commands.py::TestRedisCommands::test_sort_by": "SORT BY pattern off-shard",
    "tests/test_commands.py::TestRedisCommands::test_sort_get*": "SORT GET pattern off-shard",
    "tests/test_commands.py::TestRedisCommands::test_sort_groups_three_gets": (
        "SORT GET pattern off-shard"
    ),
    "tests/test_commands.py::TestRedisCommands::test_sort_all_options": (
        "SORT BY/GET pattern off-shard"
    ),
    "tests/test_commands.py::TestRedisCommands::test_sort_ro": "SORT_RO BY pattern off-shard",
    "tests/test_commands.py::TestRedisCommands::test_bgsave": "BGSAVE: the operator's choice",
}


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(os.environ.get("SLOTWARDEN_REDIS_PY_CACHE", os.path.join(base, "slotwarden")))


def fetch(tolerate_info: bool = False) -> Path:
    """The unpacked sdist (downloaded once per cache dir); returns its root."""
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    sdist = root / f"redis-{VERSION}.tar.gz"
    if not sdist.exists():
        pin = f"redis=={VERSION}"
        subprocess.run(
            [*PIP, "download", "-q", "--no-binary", ":all:", "--no-deps", "-d", str(root), pin],
            check=True,
            timeout=300,
        )
    name = f"redis-{VERSION}" + ("-tolerant" if tolerate_info else "")
    src = root / name
    if not (src / "tests" / "conftest.py").exists():
        tmp = root / (name + ".tmp")
        with tarfile.open(sdist) as tar:
            tar.extractall(tmp, filter="data")
        (tmp / f"redis-{VERSION}").rename(src)
        tmp.rmdir()
        if tolerate_info:
            conftest = src / "tests" / "conftest.py"
            text = conftest.read_text()
            text = text.replace('info["arch_bits"]', 'info.get("arch_bits", 64)')
            text = text.replace('info["cluster_enabled"]', 'info.get("cluster_enabled", 0)')
            conftest.write_text(text)
    return src


def run(src: Path, port: int, report: Path, timeout: float = 600) -> dict[str, str]:
    """Run the modules at ``127.0.0.1:port``, one pytest process per module (an
    INTERNALERROR ends only its own module); {node id: passed|failed|skipped}. A test
    that never reported (its module crashed or timed out) is absent: not passed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    outcomes: dict[str, str] = {}
    for module in MODULES:
        xml = report.with_name(f"{report.stem}-{Path(module).stem}.xml")
        with contextlib.suppress(subprocess.TimeoutExpired):
            subprocess.run(
                [
                    *(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"),
                    *("-p", "no:randomly", "-o", "addopts=", "--timeout", "30"),
                    *(f"--junitxml={xml}", "--redis-url", f"redis://127.0.0.1:{port}/0"),
                    *("-m", MARKERS, module),
                ],
                cwd=src,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=timeout,
                check=False,
            )
        if xml.exists():
            outcomes.update(parse_report(xml))
    return outcomes


def parse_report(xml: Path) -> dict[str, str]:
    outcomes: dict[str, str] = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        path = case.get("classname", "").replace(".", "/")
        module, _, cls = path.rpartition("/Test")
        if module:
            node = f"{module}.py::Test{cls}::{case.get('name')}"
        else:
            node = f"{path}.py::{case.get('name')}"
        kinds = {child.tag for child in case}
        if kinds & {"failure", "error"}:
            outcomes[node] = "failed"
        elif "skipped" in kinds:
            outcomes[node] = "skipped"
        elif outcomes.get(node) != "failed":  # an error at teardown comes as a 2nd case
            outcomes[node] = "passed"
    return outcomes


def expected_reason(node: str) -> str | None:
    base = node.split("[", 1)[0]
    for pattern, reason in EXPECTED.items():
        if fnmatch.fnmatchcase(base, pattern) or fnmatch.fnmatchcase(node, pattern):
            return reason
    return None


def regressions(server: dict[str, str], router: dict[str, str]) -> list[str]:
    """Tests that pass at the server but not through the router, and are not EXPECTED."""
    return sorted(
        n
        for n, o in server.items()
        if o == "passed" and router.get(n) != "passed" and expected_reason(n) is None
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server-port", type=int, required=True)
    ap.add_argument("--router-port", type=int, required=True)
    ap.add_argument("--out", default=".", help="where the JUnit reports go")
    ap.add_argument("--tolerate-info", action="store_true")
    args = ap.parse_args()
    src = fetch(args.tolerate_info)
    out = Path(args.out)
    server = run(src, args.server_port, out / "suite-server.xml")
    router = run(src, args.router_port, out / "suite-router.xml")
    for name, res in (("server", server), ("router", router)):
        counts = {k: sum(1 for o in res.values() if o == k) for k in ("passed", "failed")}
        print(f"{name}: {counts['passed']} passed, {counts['failed']} failed")
    both = sum(1 for n, o in server.items() if o == "passed" and router.get(n) == "passed")
    print(f"passing at the server and through the router: {both}")
    for n in sorted(n for n, o in server.items() if o == "passed" and router.get(n) != "passed"):
        print(f"  {'EXPECTED' if expected_reason(n) else 'REGRESSION'} {n}")
    return 1 if regressions(server, router) else 0


if __name__ == "__main__":
    sys.exit(main())
