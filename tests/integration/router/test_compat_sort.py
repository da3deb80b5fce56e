"""SORT / SORT_RO with BY and GET patterns through the router over 3 shards: a pattern
whose keys are on the sorted key's shard answers the right data; one whose keys may be
elsewhere gets Redis Cluster's error (never a silent nil, as before issue 12 item 7)."""

from __future__ import annotations

import pytest
import redis

DENIED = "option of SORT denied in Cluster mode when keys formed by the pattern"


def _far_tag(cluster, key: str) -> str:
    """A hash tag owned by another shard than ``key``."""
    i = 0
    while cluster.owner(f"{{t{i}}}") == cluster.owner(key):
        i += 1
    return f"t{i}"


def test_a_hash_tagged_pattern_answers_the_right_data(fresh) -> None:
    r = fresh.client()
    r.rpush("{u}ids", 3, 1, 2)
    r.mset({"{u}w_1": 30, "{u}w_2": 10, "{u}w_3": 20})
    r.mset({"{u}n_1": "one", "{u}n_2": "two", "{u}n_3": "three"})
    r.hset("{u}h_1", "f", "h1")
    assert r.sort("{u}ids", by="{u}w_*", get=["#", "{u}n_*"]) == [
        b"2", b"two", b"3", b"three", b"1", b"one",
    ]  # fmt: skip
    assert r.sort_ro("{u}ids", by="{u}w_*", get="{u}n_*") == [b"two", b"three", b"one"]
    assert r.sort("{u}ids", get="{u}h_*->f") == [b"h1", None, None]
    assert r.sort("{u}ids", by="nosort", get="#") == [b"3", b"1", b"2"]


def test_a_pattern_whose_keys_may_be_elsewhere_is_refused(fresh) -> None:
    r = fresh.client()
    r.rpush("ids", 1, 2)
    # no hash tag: the keys user:* forms may be on any shard
    r.set("user:1", "alice")
    r.set("user:2", "bob")
    with pytest.raises(redis.ResponseError, match=f"^GET {DENIED}"):
        r.sort("ids", get="user:*")
    with pytest.raises(redis.ResponseError, match=f"^BY {DENIED}"):
        r.sort("ids", by="user:*")
    with pytest.raises(redis.ResponseError, match=f"^GET {DENIED}"):
        r.sort_ro("ids", get="user:*")
    far = _far_tag(fresh, "{u}ids")
    r.rpush("{u}ids", 1)
    with pytest.raises(redis.ResponseError, match=f"^BY {DENIED}"):
        r.sort("{u}ids", by=f"{{{far}}}w_*")
    # inside MULTI the refusal aborts the transaction at queue time
    pipe = r.pipeline(transaction=True)
    pipe.sort("ids", get="user:*")
    with pytest.raises(redis.ResponseError):
        pipe.execute()
    assert r.sort("ids") == [b"1", b"2"]
