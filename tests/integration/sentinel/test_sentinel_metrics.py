"""``GET /metrics`` on real sentinels: the METRICS.md contract, and values that move with events.

Two shards, one replica each, three sentinels. Shard a's master is killed
(a failover that completes); shard b loses its replica and then its master
(nothing can be promoted: the master stays ODOWN and every attempt aborts).
Then a sentinel is killed and the others report it down.
"""

from __future__ import annotations

import re
import signal
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_sentinel_harness import metric, scrape, sentinel_cluster

REPO = Path(__file__).resolve().parents[3]
METRICS_MD = REPO / "deploy" / "prometheus" / "METRICS.md"


def contract() -> dict[str, tuple[str, frozenset[str]]]:
    """The sentinel rows of METRICS.md: name -> (type, labels)."""
    out = {}
    for line in METRICS_MD.read_text().splitlines():
        m = re.match(r"^\|\s*`(slotwarden_sentinel_\w+)`\s*\|\s*(\w+)\s*\|([^|]*)\|", line)
        if m:
            name, kind, labels = m.groups()
            out[name] = (kind, frozenset(re.findall(r"`(\w+)`", labels)))
    return out


def total(sc, name: str, **labels: str) -> float:
    """``name`` summed over every running sentinel (the leader may be any of them)."""
    return sum(metric(sc, sid, name, **labels) for sid in sc.procs)


def one_hot(sc, sid: str, name: str, key: str, **labels: str) -> str | None:
    """The value of label ``key`` whose row is 1 (state/role gauges)."""
    hot = [
        dict(lbl)[key]
        for (n, lbl), v in scrape(sc, sid).items()
        if n == name and v == 1 and all(dict(lbl).get(k) == w for k, w in labels.items())
    ]
    assert len(hot) <= 1, hot
    return hot[0] if hot else None


@pytest.fixture(scope="module")
def two_shards():
    with sentinel_cluster(shards=2, replicas=1) as sc:
        sc.start_all()
        sc.wait_in_sync(0)
        sc.wait_in_sync(1)
        yield sc


def test_exposition_matches_the_contract(two_shards):
    sc = two_shards
    url = f"http://127.0.0.1:{sc.ports['s1']}/metrics"
    with urllib.request.urlopen(url, timeout=5) as resp:  # public: no Authorization header
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = resp.read().decode()
    declared = contract()
    assert len(declared) == 23
    as_exposed: dict[str, tuple[str, frozenset[str]]] = {}
    for family in text_string_to_metric_families(text):
        full = family.name + "_total" if family.type == "counter" else family.name
        labels = frozenset(k for sample in family.samples for k in sample.labels)
        as_exposed[full] = (family.type, labels)
        assert len(family.documentation) > 20, family.name
        assert family.samples, f"{full} has no rows"
    assert as_exposed == declared


def test_values_move_with_events(two_shards):
    sc = two_shards
    a_master, b_master = sc.masters
    a_replica, b_replica = sc.replicas[0][0], sc.replicas[1][0]
    # at start: every row exists, at 0 where nothing happened
    sc.wait_for(
        lambda: all(metric(sc, "s1", "slotwarden_sentinel_peer_up", peer=p) for p in ("s2", "s3")),
        5,
        "s1 hearing from its peers",
    )
    m = scrape(sc, "s1")
    assert m[("slotwarden_sentinel_build_info", frozenset(
        {"version": "0.1.0", "cluster": "test", "id": "s1"}.items()))] == 1  # fmt: skip
    assert metric(sc, "s1", "slotwarden_sentinel_quorum") == 2
    assert metric(sc, "s1", "slotwarden_sentinel_peers_configured") == 3
    assert metric(sc, "s1", "slotwarden_sentinel_epoch") == 0
    assert metric(sc, "s1", "slotwarden_sentinel_topology_epoch") == 0
    assert metric(sc, "s1", "slotwarden_sentinel_config_last_reload_successful") == 1
    for shard in ("a", "b"):
        for kind in ("failover", "switchover"):
            for outcome in ("done", "aborted"):
                assert total(sc, "slotwarden_sentinel_failovers_total",
                             shard=shard, kind=kind, outcome=outcome) == 0  # fmt: skip
    for candidate in ("s1", "s2", "s3"):
        assert metric(sc, "s1", "slotwarden_sentinel_votes_cast_total", candidate=candidate) == 0
    for shard, node, role in (("a", a_master, "master"), ("a", a_replica, "replica"),
                              ("b", b_master, "master"), ("b", b_replica, "replica")):  # fmt: skip
        kw = {"shard": shard, "node": node.addr}
        assert one_hot(sc, "s1", "slotwarden_sentinel_node_state", "state", **kw) == "up"
        assert one_hot(sc, "s1", "slotwarden_sentinel_node_role", "role", **kw) == role
        sc.wait_for(
            lambda kw=kw, role=role: one_hot(
                sc, "s1", "slotwarden_sentinel_node_reported_role", "role", **kw) == role,
            5, f"{node.addr} reporting {role}",
        )  # fmt: skip
    assert metric(sc, "s1", "slotwarden_sentinel_replication_lag_bytes",
                  shard="a", node=a_replica.addr) >= 0  # fmt: skip
    assert ("slotwarden_sentinel_replication_lag_bytes", frozenset(
        {"shard": "a", "node": a_master.addr}.items())) not in m  # fmt: skip
    # a request with a wrong secret is counted
    assert sc.http("s1", "/status", auth="wrong")[0] == 401
    assert metric(sc, "s1", "slotwarden_sentinel_auth_failures_total") == 1

    # shard b: no replica left, then no master -> ODOWN that no failover can fix
    b_replica.kill(signal.SIGKILL)
    b_master.kill(signal.SIGKILL)
    a_master.kill(signal.SIGKILL)

    def b_odown_a_switched():
        b = one_hot(sc, "s1", "slotwarden_sentinel_node_state", "state",
                    shard="b", node=b_master.addr)  # fmt: skip
        a = one_hot(sc, "s1", "slotwarden_sentinel_node_role", "role",
                    shard="a", node=a_replica.addr)  # fmt: skip
        return b == "odown" and a == "master"

    sc.wait_for(b_odown_a_switched, 15, "shard b ODOWN and shard a failed over, in s1's metrics")
    # no replica of b can be promoted: refused (no epoch spent on it), not attempted
    sc.wait_for(
        lambda: total(sc, "slotwarden_sentinel_failovers_refused_total", shard="b") >= 1
        and metric(sc, "s1", "slotwarden_sentinel_failover_refused", shard="b") == 1,
        10, "a refused failover of shard b",
    )  # fmt: skip
    assert metric(sc, "s1", "slotwarden_sentinel_failover_refused", shard="a") == 0
    assert total(sc, "slotwarden_sentinel_failovers_total",
                 shard="a", kind="failover", outcome="done") == 1  # fmt: skip
    leader = next(sid for sid in sc.ids if metric(
        sc, sid, "slotwarden_sentinel_failovers_total", shard="a", kind="failover",
        outcome="done") == 1)  # fmt: skip
    assert 0 < metric(sc, leader, "slotwarden_sentinel_failover_last_duration_seconds",
                      shard="a") < 5  # fmt: skip
    assert metric(sc, leader, "slotwarden_sentinel_votes_cast_total", candidate=leader) >= 1
    others = [sid for sid in sc.ids if sid != leader]
    assert sum(metric(sc, sid, "slotwarden_sentinel_votes_cast_total", candidate=leader)
               for sid in others) >= 1  # fmt: skip
    for sid in sc.ids:
        assert metric(sc, sid, "slotwarden_sentinel_epoch") >= 1
        sc.wait_for(lambda sid=sid: metric(sc, sid, "slotwarden_sentinel_topology_epoch") >= 1,
                    5, f"{sid} on topology epoch 1")  # fmt: skip
    kw = {"shard": "a", "node": a_master.addr}
    assert one_hot(sc, "s1", "slotwarden_sentinel_node_state", "state", **kw) == "sdown"
    assert one_hot(sc, "s1", "slotwarden_sentinel_node_role", "role", **kw) == "replica"
    assert one_hot(sc, "s1", "slotwarden_sentinel_node_reported_role", "role", **kw) == "unknown"
    kw = {"shard": "b", "node": b_replica.addr}
    assert one_hot(sc, "s1", "slotwarden_sentinel_node_state", "state", **kw) == "sdown"

    # a peer killed: the others stop hearing from it
    sc.stop("s3", signal.SIGKILL)
    sc.wait_for(lambda: metric(sc, "s1", "slotwarden_sentinel_peer_up", peer="s3") == 0,
                6, "s1 reporting s3 down")  # fmt: skip
    assert metric(sc, "s1", "slotwarden_sentinel_peer_up", peer="s2") == 1
