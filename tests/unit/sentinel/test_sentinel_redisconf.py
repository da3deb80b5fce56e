"""Which nodes get cluster.yaml's ``redis:`` settings, what differs, which sentinel applies
them, and how ``slotwarden status`` shows drift (sentinel.decide.redisconf, pure)."""

from __future__ import annotations

from sentinel.decide.model import PeerOpinion
from sentinel.decide.redisconf import differences, drift_lines, is_applier, wanted
from slotwarden.cluster import config as cfg
from slotwarden.cluster.topology import Address, Shard

CONFIG = cfg.parse(
    {
        "name": "t",
        "router": {"listen": "127.0.0.1:7777"},
        "redis": {"maxmemory": "100mb", "maxmemory-policy": "allkeys-lru"},
        "shards": [
            {"name": "a", "slots": "0-8191", "master": "127.0.0.1:7001",
             "replicas": ["127.0.0.1:7101"], "redis": {"maxmemory": "1gb"}},
            {"name": "b", "slots": "8192-16383", "master": "127.0.0.1:7002",
             "replicas": ["127.0.0.1:7102"]},
        ],
    }
)  # fmt: skip


def test_every_node_of_the_topology_promoted_and_added_ones_included() -> None:
    # a failover promoted 7101 and a later edit's node 7201 joined shard a
    a = Shard("a", Address("127.0.0.1", 7101), (Address("127.0.0.1", 7001),
                                                Address("127.0.0.1", 7201)))  # fmt: skip
    topology = CONFIG.slotmap(3).derive(epoch=4, shards=(a, CONFIG.slotmap().shards[1]))
    nodes = wanted(CONFIG, topology)
    assert [(str(n.addr), n.shard) for n in nodes] == [
        ("127.0.0.1:7101", "a"), ("127.0.0.1:7001", "a"), ("127.0.0.1:7201", "a"),
        ("127.0.0.1:7002", "b"), ("127.0.0.1:7102", "b"),
    ]  # fmt: skip
    assert dict(nodes[2].settings) == {"maxmemory": "1073741824", "maxmemory-policy": "allkeys-lru"}
    assert dict(nodes[3].settings) == {"maxmemory": "104857600", "maxmemory-policy": "allkeys-lru"}


def test_nodes_of_the_file_not_yet_in_the_topology_too() -> None:
    """An edit added shard c (and a replica to b): its nodes get their settings before the
    sentinels publish it (a migration to c checks c's room against its maxmemory)."""
    data = {
        "name": "t", "router": {"listen": "127.0.0.1:7777"}, "redis": {"maxmemory": "1mb"},
        "shards": [
            {"name": "a", "slots": "0-8191", "master": "127.0.0.1:7001"},
            {"name": "b", "slots": "8192-12000", "master": "127.0.0.1:7002",
             "replicas": ["127.0.0.1:7102"]},
            {"name": "c", "slots": "12001-16383", "master": "127.0.0.1:7003",
             "redis": {"maxmemory": "2mb"}},
        ],
    }  # fmt: skip
    edited = cfg.parse(data)
    published = CONFIG.slotmap(5)  # a, b (7002 + 7102) and a's replica 7101
    nodes = [(str(n.addr), n.shard, n.settings["maxmemory"]) for n in wanted(edited, published)]
    assert nodes == [
        ("127.0.0.1:7001", "a", "1048576"), ("127.0.0.1:7101", "a", "1048576"),
        ("127.0.0.1:7002", "b", "1048576"), ("127.0.0.1:7102", "b", "1048576"),
        ("127.0.0.1:7003", "c", "2097152"),
    ]  # fmt: skip


def test_no_block_no_node_to_look_at() -> None:
    plain = cfg.parse({"name": "t", "router": {"listen": "127.0.0.1:7777"}, "shards": [
        {"name": "a", "slots": "0-16383", "master": "127.0.0.1:7001"}]})  # fmt: skip
    assert wanted(plain, plain.slotmap()) == []


def test_differences_compare_as_redis_reports() -> None:
    want = {"maxmemory": "104857600", "notify-keyspace-events": "Ex", "hz": "10"}
    assert differences(want, {"maxmemory": "104857600", "notify-keyspace-events": "xE",
                              "hz": "10"}) == []  # fmt: skip
    drifting = differences(want, {"maxmemory": "0", "notify-keyspace-events": "", "hz": None})
    assert drifting == ["maxmemory", "notify-keyspace-events", "hz"]


def test_the_lowest_id_alive_applies() -> None:
    fresh = [PeerOpinion("s2", at=99.0), PeerOpinion("s3", at=99.0)]
    assert is_applier("s1", fresh, now=100.0)
    assert not is_applier("s2", [PeerOpinion("s1", at=99.0)], now=100.0)
    # s1 not heard from for longer than PEER_FRESH_S: s2 takes over
    assert is_applier("s2", [PeerOpinion("s1", at=80.0), PeerOpinion("s3", at=99.0)], now=100.0)
    assert not is_applier("s2", [PeerOpinion("s1", at=91.0)], now=100.0)  # a slow answer


def test_status_lines_merge_what_each_sentinel_saw() -> None:
    entry = {"node": "127.0.0.1:7101", "shard": "a", "key": "maxmemory",
             "want": "104857600", "have": "0"}  # fmt: skip
    views = [
        {"id": "s1", "redis_config": {"applier": True, "drift": [entry]}},
        {"id": "s2", "redis_config": {"applier": False, "drift": [entry]}},
        {"id": "s3", "up": False},
    ]
    assert drift_lines(views) == [
        "redis config DRIFT (nodes that differ from cluster.yaml's redis: blocks)",
        "  127.0.0.1:7101 (shard a) maxmemory: want 104857600, have 0  [seen by s1, s2]",
    ]
    assert drift_lines([{"id": "s1", "redis_config": {"drift": []}}, {"id": "s2"}]) == []
