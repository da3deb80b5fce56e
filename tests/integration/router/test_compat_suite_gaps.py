"""Gaps redis-py's own suite found through the router (issue 12, second round).

CONFIG RESETSTAT resets what the router's INFO reports (its own counters, through a
baseline; /metrics stays monotonic), and SLOWLOG GET merged over the shards keeps each
shard's newest-first order when entries share a second.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import pytest
import redis


@pytest.fixture(scope="module")
def gc() -> Iterator:
    from conftest import own_cluster

    with own_cluster(extra_router={"allow_config_set": True}) as c:
        yield c


def commands_metric(c) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{c.admin_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("slotwarden_router_commands_total{")
    )


def test_config_resetstat_resets_the_routers_info_counters(gc) -> None:
    r = redis.Redis(port=gc.port, socket_timeout=10)
    others = [redis.Redis(port=gc.port, socket_timeout=10) for _ in range(3)]
    for o in others:
        o.ping()
    for i in range(20):
        r.set(f"k{i}", i)
        r.get(f"k{i}")
        r.get(f"missing{i}")
    with pytest.raises(redis.ResponseError):
        r.execute_command("NOSUCHCOMMAND")
    before = r.info("everything")
    assert before["total_commands_processed"] >= 61
    assert before["total_connections_received"] >= 4
    assert before["cmdstat_set"]["calls"] == 20
    assert before["errorstat_ERR"]["count"] >= 1
    assert before["keyspace_hits"] >= 20 and before["keyspace_misses"] >= 20
    assert before["total_net_input_bytes"] > 1000
    metric = commands_metric(gc)

    assert r.config_resetstat() is True
    after = r.info("everything")
    # only CONFIG RESETSTAT itself was counted since (INFO counts once it has answered)
    assert after["total_commands_processed"] == 1, after["total_commands_processed"]
    assert after["total_connections_received"] == 0
    assert after["rejected_connections"] == 0
    assert "cmdstat_set" not in after and "cmdstat_get" not in after
    assert after["cmdstat_config|resetstat"]["calls"] == 1
    assert "errorstat_ERR" not in after
    assert after["total_error_replies"] == 0
    assert after["keyspace_hits"] == 0 and after["keyspace_misses"] == 0  # the shards'
    assert after["total_net_input_bytes"] < before["total_net_input_bytes"]
    # counting goes on from the baseline
    r.set("k0", 1)
    again = r.info("everything")
    assert again["cmdstat_set"]["calls"] == 1
    assert again["total_commands_processed"] == 3  # RESETSTAT, INFO, SET
    # the Prometheus counters are never reset
    assert commands_metric(gc) >= metric + 3
    for o in [r, *others]:
        o.close()


def test_slowlog_get_puts_a_command_after_the_fanned_out_reset(gc) -> None:
    """SLOWLOG RESET goes to every master, each logs it; a GET on the second or third
    shard in the same second must still come first (newest first), as redis-py's
    test_slowlog_get expects. Three rounds: a second boundary cannot hide it."""
    r = redis.Redis(port=gc.port, socket_timeout=10)
    key = next(f"slow{i}" for i in range(1000) if gc.owner(f"slow{i}") == 2)
    assert r.config_set("slowlog-log-slower-than", 0) is True
    try:
        for _ in range(3):
            assert r.slowlog_reset()
            r.get(key)
            commands = [e["command"] for e in r.slowlog_get()]
            assert commands.count(b"SLOWLOG RESET") == 3, commands
            assert commands.index(f"GET {key}".encode()) == 0, commands
    finally:
        r.config_set("slowlog-log-slower-than", 10000)
        r.close()
