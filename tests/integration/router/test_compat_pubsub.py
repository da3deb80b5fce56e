"""Pub/sub through the router, compared with one real redis-server: channels routed by
their slot, patterns on every master, shard channels, counts, RESP2 and RESP3, and
resubscription on the new master after a topology change."""

from __future__ import annotations

import json
import threading
import urllib.request

import pytest
import redis
import yaml
from compat import Raw, both, keys_on_every_shard, plain_server, router_conns, wait_for
from conftest import Cluster


@pytest.fixture(scope="module")
def plain(session_farm):
    yield from plain_server(session_farm)


@pytest.fixture
def channels(fresh) -> list[str]:
    """One channel per shard."""
    return [group[0] for group in keys_on_every_shard(fresh, prefix="chan")]


def test_confirmations_and_counts_match_redis(fresh, plain, channels) -> None:
    a, b, c = channels
    script = [
        ("SUBSCRIBE", a, a, b),
        ("PSUBSCRIBE", "chan*", "x*"),
        ("SSUBSCRIBE", c),
        ("UNSUBSCRIBE", "never-subscribed"),
        ("PING",),
        ("PING", "hi"),
        ("GET", "k"),
        ("CLIENT", "SETNAME", "x"),
        ("PUNSUBSCRIBE", "x*"),
        ("SUNSUBSCRIBE",),
        ("UNSUBSCRIBE", b, a),
        ("PUNSUBSCRIBE",),
        ("GET", "k"),  # out of subscribed mode again
        ("UNSUBSCRIBE",),
        ("PUNSUBSCRIBE",),
        ("SUNSUBSCRIBE",),
    ]
    replies = 3 + 2 + 1 + 1 + 2 + 2 + 1 + 1 + 2 + 1 + 1 + 3
    ours, theirs = both(fresh.port, plain.port, *script, replies=replies)
    assert ours == theirs
    assert b"-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / " \
        b"RESET are allowed in this context\r\n" in ours  # fmt: skip


def test_resp3_confirmations_are_pushes_and_any_command_is_allowed(fresh, plain, channels) -> None:
    a = channels[1]
    script = [("HELLO", "3"), ("SUBSCRIBE", a), ("SET", "{r3}k", "v"), ("GET", "{r3}k"),
              ("PING",), ("UNSUBSCRIBE", a), ("UNSUBSCRIBE",), ("DEL", "{r3}k")]  # fmt: skip
    ours, theirs = both(fresh.port, plain.port, *script)
    assert ours[1:] == theirs[1:]  # HELLO's id and version differ by design
    assert ours[1] == b">3\r\n$9\r\nsubscribe\r\n$%d\r\n%s\r\n:1\r\n" % (len(a), a.encode())


def test_messages_from_every_shard_reach_a_listener_thread(fresh, channels) -> None:
    r = fresh.client()
    received: list[tuple] = []
    lock = threading.Lock()

    def handler(message: dict) -> None:
        with lock:
            received.append((message["type"], message["channel"], message["data"]))

    p = r.pubsub()
    p.subscribe(**{ch: handler for ch in channels})
    p.psubscribe(**{"chan*": handler})
    listener = p.run_in_thread(sleep_time=0.01, daemon=True)
    try:
        wait_for(lambda: r.pubsub_numpat() == 1, "the pattern on every master")
        wait_for(lambda: all(n == 1 for _, n in r.pubsub_numsub(*channels)), "the channels")
        for ch in channels:
            assert r.publish(ch, f"to {ch}") == 2  # channel + pattern, as Redis counts
        assert r.publish("chan-with-no-subscriber", "p") == 1  # the pattern only
        wait_for(lambda: len(received) == 2 * len(channels) + 1, "every message")
    finally:
        listener.stop()
        listener.join(5)
        p.close()
    expected = [("message", ch.encode(), f"to {ch}".encode()) for ch in channels]
    expected += [("pmessage", ch.encode(), f"to {ch}".encode()) for ch in channels]
    expected += [("pmessage", b"chan-with-no-subscriber", b"p")]
    assert sorted(received) == sorted(expected)


def test_resp3_client_from_url_receives_push_messages(fresh, channels) -> None:
    r3 = redis.Redis.from_url(f"redis://127.0.0.1:{fresh.port}/0", protocol=3)
    p = r3.pubsub()
    p.subscribe(channels[2])
    assert p.get_message(timeout=5)["type"] == "subscribe"
    assert fresh.client().publish(channels[2], "pushed") == 1
    message = p.get_message(timeout=5)
    assert (message["type"], message["data"]) == ("message", b"pushed")
    p.close()


def test_shard_channels_and_introspection(fresh, channels) -> None:
    r = fresh.client()
    s = r.pubsub()
    s.ssubscribe(channels[0])
    assert s.get_sharded_message(timeout=5)["type"] == "ssubscribe"
    assert r.spublish(channels[0], "s") == 1
    assert s.get_sharded_message(timeout=5)["data"] == b"s"
    p = r.pubsub()
    p.subscribe(channels[1], channels[2])
    p.psubscribe("a*", "b*")
    for _ in range(4):
        p.get_message(timeout=5)
    assert sorted(r.pubsub_channels()) == sorted([channels[1].encode(), channels[2].encode()])
    assert r.pubsub_numsub(channels[1], "none") == [(channels[1].encode(), 1), (b"none", 0)]
    assert r.pubsub_numpat() == 2
    assert r.execute_command("PUBSUB", "SHARDCHANNELS") == [channels[0].encode()]
    assert r.execute_command("PUBSUB", "SHARDNUMSUB", channels[0]) == [channels[0].encode(), 1]
    p.close()
    s.close()


def test_shard_channels_of_several_shards_in_one_ssubscribe_match_redis(
    fresh, plain, channels
) -> None:
    """One redis-server 7.0 takes SSUBSCRIBE/SUNSUBSCRIBE of channels of any slots (Redis
    Cluster refuses them); the router does as the server: each channel on its shard,
    confirmations with the client's counts (redis-py's test_pubsub_shardchannels and
    test_resubscribe_to_shard_channels_on_reconnection)."""
    a, b, c = channels
    script = [
        ("SSUBSCRIBE", a, b, c, a),
        ("SUNSUBSCRIBE", c, a, "never"),
        ("SSUBSCRIBE", c),
        ("SUNSUBSCRIBE", b),
        ("SUNSUBSCRIBE",),  # one left: Redis's order of several is its dict's (random)
    ]
    ours, theirs = both(fresh.port, plain.port, *script, replies=4 + 3 + 1 + 1 + 1)
    assert ours == theirs
    r = fresh.client()
    s = r.pubsub()
    s.ssubscribe(a, b, c)
    for _ in range(3):
        assert s.get_sharded_message(timeout=5)["type"] == "ssubscribe"
    assert sorted(r.pubsub_shardchannels()) == sorted(x.encode() for x in channels)
    for channel in channels:  # each shard delivers its own channel's messages
        assert r.spublish(channel, f"to {channel}") == 1
        message = s.get_sharded_message(timeout=5)
        assert (message["channel"], message["data"]) == (channel.encode(), f"to {channel}".encode())
    # a lost connection: redis-py resubscribes every shard channel in one SSUBSCRIBE
    s.connection.disconnect()
    got = {s.get_sharded_message(timeout=5)["channel"] for _ in range(3)}
    assert got == {x.encode() for x in channels}
    assert r.spublish(b, "again") == 1
    assert s.get_sharded_message(timeout=5)["data"] == b"again"
    s.close()


def test_subscription_connections_are_closed_when_the_client_goes(fresh, channels) -> None:
    def pattern_conns() -> list[int]:
        return [sum(1 for x in router_conns(fresh, i) if x["psub"] != "0") for i in range(3)]

    c = Raw(fresh.port)
    c.talk(("PSUBSCRIBE", "gone*"))
    assert pattern_conns() == [1, 1, 1]  # one subscription connection per master
    c.close()
    wait_for(lambda: pattern_conns() == [0, 0, 0], "the subscription connections to close")


def test_reset_leaves_subscribed_mode(fresh, plain, channels) -> None:
    script = [("SUBSCRIBE", channels[0]), ("RESET",), ("GET", "x"), ("UNSUBSCRIBE",)]
    ours, theirs = both(fresh.port, plain.port, *script)
    assert ours == theirs


def test_resubscribes_on_the_new_master_after_a_topology_change(farm) -> None:
    secret = "pubsub-test-secret"
    c = Cluster(farm, env={"SLOTWARDEN_SECRET": secret})
    try:
        channel = keys_on_every_shard(c, prefix="fo")[1][0]
        sub = c.client().pubsub()
        sub.subscribe(channel)
        sub.psubscribe("fo*")
        for _ in range(2):
            assert sub.get_message(timeout=5)["type"] in ("subscribe", "psubscribe")
        spare = farm.start()
        headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
        admin = f"http://127.0.0.1:{c.admin_port}"
        # a pushed topology may name only cluster.yaml's nodes: list the spare in shard b
        with open(c.config) as f:
            data = yaml.safe_load(f)
        data["shards"][1]["replicas"] = [spare.addr]
        with open(c.config, "w") as f:
            yaml.safe_dump(data, f, sort_keys=False)
        req = urllib.request.Request(f"{admin}/reload", data=b"", headers=headers, method="POST")
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert json.load(resp)["applied"] is True
        with urllib.request.urlopen(f"{admin}/topology", timeout=5) as resp:
            epoch = json.load(resp)["epoch"]
        # the topology moves shard b to that node, as a failover would
        shards = data["shards"]
        shards[1]["master"], shards[1]["replicas"] = spare.addr, [shards[1]["master"]]
        body = json.dumps({"epoch": epoch + 1, "shards": shards}).encode()
        req = urllib.request.Request(f"{admin}/topology", data=body, headers=headers, method="POST")
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert json.load(resp)["applied"] is True
        direct = redis.Redis(port=spare.port)
        wait_for(
            lambda: direct.pubsub_numsub(channel)[0][1] == 1 and direct.pubsub_numpat() == 1,
            "the subscriber to be resubscribed on the new master",
        )
        assert direct.publish(channel, "after failover") == 2
        got = [sub.get_message(timeout=5) for _ in range(2)]
        assert sorted(m["type"] for m in got) == ["message", "pmessage"]
        assert all(m["data"] == b"after failover" for m in got)
        # the client saw no extra confirmation: nothing else is waiting
        assert sub.get_message(timeout=0.3) is None
        sub.close()
    finally:
        c.router.stop()
