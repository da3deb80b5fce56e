"""Cache libraries with expiring multi-key writes: dogpile.cache, aiocache, cashews.
Each writes keys that land on every shard, with a TTL that must really be set."""

from __future__ import annotations

import pytest

from .conftest import Target

KEYS = [f"item:{i}" for i in range(12)]


def test_dogpile_set_multi_and_get_or_create_multi(target: Target) -> None:
    pytest.importorskip("dogpile.cache")
    from dogpile.cache import make_region

    region = make_region().configure(
        "dogpile.cache.redis",
        expiration_time=60,
        arguments={"host": "127.0.0.1", "port": target.port, "redis_expiration_time": 120},
    )
    region.set_multi({k: i for i, k in enumerate(KEYS)})
    assert target.shards_holding(KEYS) == len(target.shard_ports)
    raw = target.client()
    assert all(110 <= raw.ttl(k) <= 120 for k in KEYS)
    assert region.get_multi(KEYS) == list(range(12))
    made: list[str] = []

    def create(*keys: str) -> list[str]:
        made.extend(keys)
        return [f"new-{k}" for k in keys]

    wanted = [*KEYS[:3], "fresh:1", "fresh:2", "fresh:3"]
    got = region.get_or_create_multi(wanted, create)
    assert got == [0, 1, 2, "new-fresh:1", "new-fresh:2", "new-fresh:3"]
    assert made == ["fresh:1", "fresh:2", "fresh:3"]
    assert all(110 <= raw.ttl(k) <= 120 for k in made)
    region.delete_multi(KEYS)
    assert target.all_keys() == {k.encode() for k in made}


async def test_aiocache_multi_set_with_ttl(target: Target) -> None:
    pytest.importorskip("aiocache")
    from aiocache import RedisCache

    cache = RedisCache(endpoint="127.0.0.1", port=target.port, namespace="", timeout=5)
    try:
        assert await cache.multi_set([(k, f"v{i}") for i, k in enumerate(KEYS)], ttl=100)
        assert target.shards_holding(KEYS) == len(target.shard_ports)
        assert await cache.multi_get(KEYS) == [f"v{i}" for i in range(12)]
        raw = target.client()
        assert all(90 <= raw.ttl(k) <= 100 for k in KEYS)
        assert await cache.delete(KEYS[0]) == 1
        assert await cache.exists(KEYS[0]) is False
    finally:
        await cache.close()


async def test_cashews_set_many_with_expire(target: Target) -> None:
    pytest.importorskip("cashews")
    from cashews import Cache

    # suppress=True is cashews' default: backend errors are logged and swallowed -
    # which is how set_many "silently wrote nothing" through the router (its MULTI
    # over several shards was refused with EXECABORT; see docs/compatibility.md).
    cache = Cache()
    cache.setup(target.url, socket_timeout=5)
    try:
        await cache.set_many({k: i for i, k in enumerate(KEYS)}, expire=100)
        assert target.shards_holding(KEYS) == len(target.shard_ports)
        assert await cache.get_many(*KEYS) == tuple(range(12))
        raw = target.client()
        assert all(90 <= raw.ttl(k) <= 100 for k in KEYS)
        assert await cache.delete_many(*KEYS[:6]) is not False
        assert target.all_keys() == {k.encode() for k in KEYS[6:]}
    finally:
        await cache.close()
