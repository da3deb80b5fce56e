"""Django's cache framework (``django.core.cache.backends.redis.RedisCache``) and
django-redis, through the router and against one redis-server."""

from __future__ import annotations

import pytest

django = pytest.importorskip("django")

from django.conf import settings  # noqa: E402

if not settings.configured:
    settings.configure(USE_TZ=True)

from .conftest import Target  # noqa: E402

KEYS = [f"user:{i}" for i in range(12)]


def django_cache(target: Target):
    from django.core.cache.backends.redis import RedisCache

    return RedisCache(target.url, {"TIMEOUT": 300})


def test_django_set_many_get_many_with_timeouts(target: Target) -> None:
    cache = django_cache(target)
    failed = cache.set_many({k: {"n": i} for i, k in enumerate(KEYS)}, timeout=100)
    assert failed == []
    assert target.shards_holding([f":1:{k}" for k in KEYS]) == len(target.shard_ports)
    assert cache.get_many(KEYS) == {k: {"n": i} for i, k in enumerate(KEYS)}
    raw = target.client()
    for k in KEYS:  # the timeout really set: a TTL on every key, on every shard
        assert 90 <= raw.ttl(f":1:{k}") <= 100
    cache.set("counter", 5, timeout=50)
    assert cache.incr("counter", 10) == 15
    assert cache.touch(KEYS[0], 1000) is True
    assert 990 <= raw.ttl(f":1:{KEYS[0]}") <= 1000
    cache.delete_many(KEYS[:6])
    assert cache.get_many(KEYS) == {k: {"n": i + 6} for i, k in enumerate(KEYS[6:])}
    assert not any(raw.exists(f":1:{k}") for k in KEYS[:6])


def test_django_redis_set_many_and_delete_pattern(target: Target) -> None:
    from django_redis.cache import RedisCache

    cache = RedisCache(target.url, {"TIMEOUT": 300})
    cache.set_many({k: i for i, k in enumerate(KEYS)}, timeout=100)
    cache.set_many({f"other:{i}": i for i in range(5)}, timeout=100)
    assert cache.get_many(KEYS) == {k: i for i, k in enumerate(KEYS)}
    raw = target.client()
    assert all(90 <= raw.ttl(f":1:{k}") <= 100 for k in KEYS)
    assert cache.delete_pattern("user:*") == len(KEYS)
    assert target.all_keys() == {f":1:other:{i}".encode() for i in range(5)}
    assert cache.incr("other:1", 2) == 3
