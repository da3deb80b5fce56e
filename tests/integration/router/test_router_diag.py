"""SLOWLOG, LATENCY and MEMORY STATS/DOCTOR through a real router over 3 shards answer for
the whole cluster, every master's reply merged (issue 12 item 9)."""

from __future__ import annotations

import pytest
import redis
from conftest import Cluster

NAMES = [b"a", b"b", b"c"]  # write_cluster_yaml's shard names
BUSY = "local i = 0 while i < 3000000 do i = i + 1 end return i"  # some ms of work


def keys_on_every_shard(cluster: Cluster) -> list[str]:
    found: dict[int, str] = {}
    i = 0
    while len(found) < 3:
        found.setdefault(cluster.owner(f"diag{i}"), f"diag{i}")
        i += 1
    return [found[s] for s in range(3)]


@pytest.fixture
def shards(fresh: Cluster):
    clients = [fresh.shard_client(i) for i in range(3)]
    for s in clients:
        s.config_set("slowlog-log-slower-than", "0")
        s.config_set("latency-monitor-threshold", "1")
        s.slowlog_reset()
        s.execute_command("LATENCY", "RESET")
    yield clients
    for s in clients:
        s.config_set("slowlog-log-slower-than", "10000")
        s.config_set("latency-monitor-threshold", "0")
        s.close()


def test_slowlog_get_len_reset_cover_every_shard(fresh: Cluster, shards) -> None:
    r = fresh.client()
    assert r.slowlog_reset() is True
    assert all(s.slowlog_len() <= 1 for s in shards)
    for key in keys_on_every_shard(fresh):
        r.set(key, "v")
    before = sum(s.slowlog_len() for s in shards)
    merged = r.slowlog_len()
    after = sum(s.slowlog_len() for s in shards)  # each SLOWLOG LEN is logged too
    assert before <= merged <= after
    entries = r.slowlog_get(100)
    by_shard = {e["client_name"] for e in entries}
    assert set(NAMES) <= by_shard, entries
    sets = [e for e in entries if e["command"].startswith(b"SET diag")]
    assert len(sets) == 3
    assert [e["start_time"] for e in entries] == sorted(
        (e["start_time"] for e in entries), reverse=True
    )
    assert len(r.slowlog_get(2)) == 2
    assert len(r.slowlog_get()) <= 10
    assert r.slowlog_reset() is True
    assert all(s.slowlog_len() <= 1 for s in shards)  # only the RESET itself, if anything


def test_latency_latest_history_reset_doctor(fresh: Cluster, shards) -> None:
    r = fresh.client()
    for s in shards:
        s.eval(BUSY, 0)  # a "command" latency event on each
    latest = r.execute_command("LATENCY", "LATEST")
    names = {e[0] for e in latest}
    # a loaded machine may log other slow events too (fast-command, expire-cycle …)
    assert {b"a:command", b"b:command", b"c:command"} <= names, latest
    assert all(e[2] >= 1 and e[3] >= 1 for e in latest)
    history = r.execute_command("LATENCY", "HISTORY", "command")
    assert len(history) >= 3
    assert [h[0] for h in history] == sorted(h[0] for h in history)
    doctor = r.execute_command("LATENCY", "DOCTOR")
    text = doctor.decode() if isinstance(doctor, bytes) else str(doctor)
    for name in ("a", "b", "c"):
        assert f"=== shard {name} ===" in text
    assert r.execute_command("LATENCY", "RESET") == len(names)
    assert r.execute_command("LATENCY", "LATEST") == []


def test_memory_stats_and_doctor_sum_the_masters(fresh: Cluster) -> None:
    r = fresh.client()
    for i in range(60):
        r.set(f"mem{i}", "x" * 100)
    before = [fresh.shard_client(i).memory_stats() for i in range(3)]
    stats = r.memory_stats()
    after = [fresh.shard_client(i).memory_stats() for i in range(3)]
    assert stats["keys.count"] == 60 == sum(m["keys.count"] for m in after)
    startup = sum(m["startup.allocated"] for m in after)
    assert stats["startup.allocated"] == startup  # fixed at start: summed exactly
    total = sum(m["total.allocated"] for m in after)
    assert 0.9 * total < stats["total.allocated"] < 1.1 * total
    # a shard may resize its hash table at any time: the sum is between two readings
    sums = [sum(m["db.0"]["overhead.hashtable.main"] for m in ms) for ms in (before, after)]
    assert min(sums) <= stats["db.0"]["overhead.hashtable.main"] <= max(sums)
    r3 = redis.Redis(port=fresh.port, protocol=3)
    stats3 = r3.memory_stats()
    assert stats3["keys.count"] == 60 and isinstance(stats3["dataset.percentage"], float)
    doctor = r3.execute_command("MEMORY", "DOCTOR")
    text = doctor.decode() if isinstance(doctor, bytes) else str(doctor)
    assert text.count("=== shard ") == 3
    r3.close()
