"""redis-py's own test suite (v8.1.0) through the router: every test that passes at
one redis-server passes through the router over three shards, except the list in
``redis_py_suite.EXPECTED`` (each with its reason; docs/compatibility.md has it too).
The sdist is fetched once per cache dir; both runs go in parallel."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import own_cluster

from . import redis_py_suite as suite


@pytest.mark.timeout(1200)
def test_redis_py_suite_through_router(tmp_path: Path) -> None:
    src = suite.fetch()
    # servers of its own: the suite flushes, configures and kills clients; its
    # CONFIG SET tests (and SLOWLOG fixtures) need router.allow_config_set
    with own_cluster(extra_router={"allow_config_set": True}) as cluster:
        server = cluster.farm.start()
        with ThreadPoolExecutor(2) as pool:
            at_server = pool.submit(suite.run, src, server.port, tmp_path / "server.xml")
            at_router = pool.submit(suite.run, src, cluster.port, tmp_path / "router.xml")
            server_outcomes, router_outcomes = at_server.result(), at_router.result()
    passed = [n for n, o in server_outcomes.items() if o == "passed"]
    assert len(passed) > 600, "the suite did not run at the plain server"
    through = [n for n in passed if router_outcomes.get(n) == "passed"]
    lost = suite.regressions(server_outcomes, router_outcomes)
    summary = (
        f"{len(passed)} pass at the server, {len(through)} of them through the router; "
        f"{len(lost)} not passing and not in EXPECTED:\n"
        + "\n".join(f"  {n} ({router_outcomes.get(n, 'did not run')})" for n in lost)
    )
    print(summary)
    assert not lost, summary
