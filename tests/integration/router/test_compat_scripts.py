"""Lua scripts and functions through the router: routed by their keys, SCRIPT/FUNCTION
management on every master, compared with one real redis-server."""

from __future__ import annotations

import pytest
import redis
from compat import Raw, both, keys_on_every_shard, plain_server

LIBRARY = """#!lua name=swlib
redis.register_function('swget', function(keys, args) return redis.call('get', keys[1]) end)
redis.register_function{function_name='swro', callback=function(keys, args)
  return #keys end, flags={'no-writes'}}
"""


def _functions(listing: list) -> list:
    """FUNCTION LIST with each library's functions sorted (Redis lists them in its
    dict's order, which differs between servers)."""
    out = []
    for lib in listing:
        items = dict(lib) if isinstance(lib, dict) else dict(zip(lib[::2], lib[1::2], strict=True))
        funcs = [
            f if isinstance(f, dict) else dict(zip(f[::2], f[1::2], strict=True))
            for f in items[b"functions"]
        ]
        items[b"functions"] = sorted(funcs, key=lambda f: f[b"name"])
        out.append(items)
    return out


@pytest.fixture(scope="module")
def plain(session_farm):
    yield from plain_server(session_farm)


@pytest.fixture
def keys(fresh, plain) -> list[str]:
    p = redis.Redis(port=plain.port)
    p.flushall()
    p.script_flush()
    p.function_flush()
    r = fresh.client()
    r.script_flush()
    r.function_flush()
    return [group[0] for group in keys_on_every_shard(fresh, prefix="lua")]


def test_register_script_runs_wherever_its_keys_land(fresh, keys) -> None:
    r = fresh.client()
    incr_by = r.register_script("return redis.call('incrby', KEYS[1], ARGV[1])")
    for i, key in enumerate(keys):
        assert (
            incr_by(keys=[key], args=[i + 1]) == i + 1
        )  # EVALSHA, NOSCRIPT, EVAL, as redis-py does
        assert fresh.shard_client(i).get(key) == str(i + 1).encode()
    # SCRIPT LOAD went to every master, so EVALSHA works on each shard right away
    sha = r.script_load("return ARGV[1]")
    for key in keys:
        assert r.evalsha(sha, 1, key, "x") == b"x"
    assert r.script_exists(sha, "0" * 40) == [True, False]
    # a script on one master only does not "exist" for the router
    lonely = fresh.shard_client(2).script_load("return 'lonely'")
    assert r.script_exists(lonely) == [False]
    with Raw(fresh.port) as c:  # ... and EVALSHA on a master without it is NOSCRIPT
        assert c.call("EVALSHA", lonely, "1", keys[0]).startswith(b"-NOSCRIPT")
    assert r.script_flush() is True
    assert r.script_exists(sha) == [False]


def test_keys_on_two_shards_are_crossslot_and_keyless_scripts_run_on_shard_zero(
    fresh, keys
) -> None:
    r = fresh.client()
    with pytest.raises(redis.ResponseError, match="hash to the same slot"):
        r.eval("return 1", 2, keys[0], keys[1])
    assert r.eval("redis.call('set', 'zero-keys', 'here') return 1", 0) == 1
    assert fresh.shard_client(0).get("zero-keys") == b"here"
    assert r.eval("return redis.call('get', KEYS[1])", 1, keys[2]) is None
    assert r.eval_ro("return #KEYS", 2, keys[1], keys[1]) == 2


def test_script_replies_and_errors_match_redis(fresh, plain, keys) -> None:
    a = keys[1]
    script = [
        ("EVAL", "return {1, 'two', {3}, redis.status_reply('OK'), false}", "0"),
        ("EVAL", "return redis.error_reply('MY boom')", "0"),
        ("EVAL", "return 1", "5", a),
        ("EVAL", "return 1", "-1"),
        ("EVAL", "return 1", "x"),
        ("EVALSHA", "0" * 40, "0"),
        ("EVAL", "return redis.call('nosuchcmd')", "0"),
        (
            "EVAL",
            "redis.call('set', KEYS[1], ARGV[1]) return redis.call('get', KEYS[1])",
            "1",
            a,
            "v",
        ),
        ("SCRIPT", "LOAD", "return 42"),
        ("SCRIPT", "EXISTS", "1fa00e76656cc152ad327c13fe365858fd7be306", "0" * 40),
        ("SCRIPT", "KILL"),
        ("FCALL", "nosuchfunc", "0"),
    ]
    ours, theirs = both(fresh.port, plain.port, *script)
    assert ours == theirs


@pytest.mark.parametrize("protocol", [2, 3])
def test_functions_load_everywhere_and_fcall_routes_by_key(fresh, plain, keys, protocol) -> None:
    r = redis.Redis(port=fresh.port, protocol=protocol)
    p = redis.Redis(port=plain.port, protocol=protocol)
    assert r.function_load(LIBRARY) == p.function_load(LIBRARY) == b"swlib"
    for i, key in enumerate(keys):
        fresh.shard_client(i).set(key, f"v{i}")
        assert r.fcall("swget", 1, key) == f"v{i}".encode()
        assert r.fcall_ro("swro", 2, key, key) == 2
    assert _functions(r.function_list()) == _functions(p.function_list())
    with pytest.raises(redis.ResponseError, match="already exists"):
        r.function_load(LIBRARY)
    assert r.function_delete("swlib") is True
    with pytest.raises(redis.ResponseError, match="Function not found"):
        r.fcall("swget", 1, keys[0])
    assert r.function_list() == []
