"""Fixtures of the client-library tier: each test runs once against the router over
three real shards and once against one bare redis-server (which proves the test
itself is right). Servers are session-scoped; every test starts from empty shards."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis
from conftest import Cluster, own_cluster

from slotwarden.procs import RedisFarm


@dataclass
class Target:
    """Where a library under test connects: the router (3 shards) or one redis-server."""

    name: str
    port: int
    shard_ports: list[int]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, **kw: object) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=10, **kw)

    def shards(self) -> list[redis.Redis]:
        return [redis.Redis(port=p, socket_timeout=10) for p in self.shard_ports]

    def flush(self) -> None:
        for s in self.shards():
            s.flushall()

    def all_keys(self) -> set[bytes]:
        """Every key of every shard, read from the shards themselves."""
        out: set[bytes] = set()
        for s in self.shards():
            out |= set(s.keys("*"))
        return out

    def shards_holding(self, keys: list[str]) -> int:
        """How many shards hold at least one of ``keys`` (proves a test spans shards)."""
        return sum(1 for s in self.shards() if any(s.exists(k) for k in keys))


@pytest.fixture(scope="session")
def router_cluster() -> Iterator[Cluster]:
    with own_cluster() as c:
        yield c


@pytest.fixture(scope="session")
def bare_farm() -> Iterator[RedisFarm]:
    f = RedisFarm()
    try:
        yield f
    finally:
        f.close()


@pytest.fixture(scope="session", params=["router", "redis"])
def target_session(request: pytest.FixtureRequest) -> Target:
    if request.param == "router":
        c: Cluster = request.getfixturevalue("router_cluster")
        return Target("router", c.port, [m.port for m in c.masters])
    proc = request.getfixturevalue("bare_farm").start()
    return Target("redis", proc.port, [proc.port])


@pytest.fixture
def target(target_session: Target) -> Target:
    """The session's target (router or bare redis-server), emptied."""
    target_session.flush()
    return target_session
