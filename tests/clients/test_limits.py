"""limits (rate limiting): hits counted through the router; ``storage.reset()`` with
the hash-tag recipe (``key_prefix="{LIMITS}"``) removes every key on every shard."""

from __future__ import annotations

import pytest

pytest.importorskip("limits")

from limits import RateLimitItemPerMinute
from limits.storage import RedisStorage
from limits.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    SlidingWindowCounterRateLimiter,
)

from .conftest import Target

USERS = [f"user{i}" for i in range(24)]


@pytest.mark.parametrize(
    "strategy",
    [FixedWindowRateLimiter, MovingWindowRateLimiter, SlidingWindowCounterRateLimiter],
)
def test_limits_hits(target: Target, strategy: type) -> None:
    limiter = strategy(RedisStorage(target.url))
    limit = RateLimitItemPerMinute(3)
    for user in USERS:
        assert [limiter.hit(limit, user) for _ in range(4)] == [True, True, True, False]
        assert limiter.get_window_stats(limit, user).remaining == 0
    assert all(s.dbsize() for s in target.shards())  # the limits live on every shard


def test_limits_reset_with_hash_tag_prefix(target: Target) -> None:
    storage = RedisStorage(target.url, key_prefix="{LIMITS}")
    limiter = FixedWindowRateLimiter(storage)
    limit = RateLimitItemPerMinute(2)
    for user in USERS:
        limiter.hit(limit, user)
        limiter.hit(limit, user)
        assert limiter.hit(limit, user) is False
    assert len(target.all_keys()) == len(USERS)
    assert storage.reset() == len(USERS)
    assert target.all_keys() == set()
    assert limiter.hit(limit, USERS[0]) is True
