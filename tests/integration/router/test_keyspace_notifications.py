"""Keyspace notifications through the router (issue 15): a channel SUBSCRIBE to
``__keyevent@0__:<event>`` or ``__keyspace@0__:<key>`` gets the events of every shard, as a
pattern does, not only those of the shard that owns the channel name's slot.

Three real shards with ``notify-keyspace-events KEA``; redis-py subscribes through the router.
"""

from __future__ import annotations

import time

import pytest
import redis
from conftest import own_cluster


@pytest.fixture(scope="module")
def kc():
    with own_cluster() as c:
        for i in range(len(c.masters)):
            c.shard_client(i).config_set("notify-keyspace-events", "KEA")
        yield c


def one_key_per_shard(c, prefix: str) -> list[str]:
    found: dict[int, str] = {}
    for i in range(10_000):
        key = f"{prefix}{i}"
        found.setdefault(c.owner(key), key)
        if len(found) == len(c.masters):
            return [found[s] for s in sorted(found)]
    raise AssertionError("no key for some shard")


def messages(sub, want: int, timeout: float = 5.0) -> list[tuple[bytes, bytes]]:
    got: list[tuple[bytes, bytes]] = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        m = sub.get_message(timeout=0.1)
        if m is not None and m["type"] == "message":
            got.append((m["channel"], m["data"]))
    return got


def numsub(conn: redis.Redis, channel: str) -> int:
    return dict(conn.pubsub_numsub(channel))[channel.encode()]


def test_keyevent_channel_gets_every_shards_events(kc) -> None:
    r = kc.client()
    sub = kc.client().pubsub()
    sub.subscribe("__keyevent@0__:set", "__keyevent@0__:expired")
    assert [sub.get_message(timeout=5)["data"] for _ in range(2)] == [1, 2]
    # subscribed on every master: once per master, counted once through the router
    assert [numsub(kc.shard_client(i), "__keyevent@0__:set") for i in range(3)] == [1, 1, 1]
    assert numsub(r, "__keyevent@0__:set") == 1

    keys = one_key_per_shard(kc, "ev")
    for key in keys:
        r.set(key, "v", px=100)
    got = messages(sub, 6)
    assert sorted(got) == sorted(
        [(b"__keyevent@0__:set", k.encode()) for k in keys]
        + [(b"__keyevent@0__:expired", k.encode()) for k in keys]
    )
    assert sub.get_message(timeout=0.3) is None

    sub.unsubscribe()
    assert [sub.get_message(timeout=5)["data"] for _ in range(2)] == [1, 0]
    r.set(keys[0], "again")
    assert messages(sub, 1, timeout=0.5) == []
    time.sleep(0.2)  # the dedicated connections are released once they hold nothing
    assert [numsub(kc.shard_client(i), "__keyevent@0__:set") for i in range(3)] == [0, 0, 0]
    sub.close()


def test_keyspace_channel_of_a_key_gets_its_events(kc) -> None:
    r = kc.client()
    keys = one_key_per_shard(kc, "ks")
    sub = kc.client().pubsub()
    sub.subscribe(*(f"__keyspace@0__:{k}" for k in keys))
    assert [sub.get_message(timeout=5)["data"] for _ in keys] == [1, 2, 3]
    for key in keys:
        r.rpush(key, "x")
        r.delete(key)
    got = messages(sub, 6)
    want = []
    for key in keys:
        want += [(f"__keyspace@0__:{key}".encode(), b"rpush")]
        want += [(f"__keyspace@0__:{key}".encode(), b"del")]
    assert sorted(got) == sorted(want)
    sub.close()
