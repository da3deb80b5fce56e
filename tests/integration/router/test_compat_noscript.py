"""Transparent NOSCRIPT through the router over 3 shards (issue 12 item 6): an EVALSHA a
shard answers -NOSCRIPT (its scripts flushed behind the router's back, as a promoted
replica or a restarted node has none) is loaded there and retried once, in order."""

from __future__ import annotations

import pytest
import redis
from compat import Raw, keys_on_every_shard

INCR = "return redis.call('incrby', KEYS[1], ARGV[1])"


@pytest.fixture
def keys(fresh) -> list[str]:
    fresh.client().script_flush()
    return [group[0] for group in keys_on_every_shard(fresh, prefix="ns")]


def test_evalsha_after_a_shard_lost_its_scripts_is_retried(fresh, keys) -> None:
    r = fresh.client()
    script = r.register_script(INCR)
    assert script(keys=[keys[1]], args=[2]) == 2  # SCRIPT LOAD / EVAL: the router saw it
    fresh.shard_client(1).script_flush()  # behind the router's back
    with Raw(fresh.port) as c:  # a raw EVALSHA, no client-side fallback
        assert c.call("EVALSHA", script.sha, "1", keys[1], "3") == b":5\r\n"
        assert c.call("EVALSHA", script.sha.upper(), "1", keys[1], "1") == b":6\r\n"
    assert fresh.shard_client(1).script_exists(script.sha) == [True]  # loaded again there
    # a body seen by EVAL (not SCRIPT LOAD) counts too
    assert r.eval("return 'ev'", 1, keys[2]) == b"ev"
    fresh.shard_client(2).script_flush()
    sha = fresh.shard_client(0).script_load("return 'ev'")
    assert r.evalsha_ro(sha, 1, keys[2]) == b"ev"


def test_a_pipeline_of_evalsha_keeps_its_order(fresh, keys) -> None:
    r = fresh.client()
    sha = r.script_load(INCR)
    for i in range(3):
        fresh.shard_client(i).script_flush()
    with Raw(fresh.port) as c:
        commands = [("EVALSHA", sha, "1", key, "1") for n in range(4) for key in keys]
        replies = c.talk(*commands, ("PING",))
    assert replies == [b":%d\r\n" % n for n in range(1, 5) for _ in keys] + [b"+PONG\r\n"]
    assert [r.get(key) for key in keys] == [b"4"] * 3


def test_unknown_bodies_and_script_flush_through_the_router_still_say_noscript(fresh, keys) -> None:
    r = fresh.client()
    lonely = fresh.shard_client(0).script_load("return 'lonely'")  # never seen by the router
    with pytest.raises(redis.exceptions.NoScriptError):
        r.evalsha(lonely, 1, keys[1])
    sha = r.script_load(INCR)
    assert r.script_flush() is True  # through the router: the router forgets it too
    with pytest.raises(redis.exceptions.NoScriptError):
        r.evalsha(sha, 1, keys[0])
    # inside MULTI the NOSCRIPT comes back in EXEC's array, passed through
    r.script_load(INCR)
    fresh.shard_client(0).script_flush()
    with Raw(fresh.port) as c:
        replies = c.talk(("MULTI",), ("EVALSHA", sha, "1", keys[0], "1"), ("EXEC",))
    assert replies[2].startswith(b"*1\r\n-NOSCRIPT")
