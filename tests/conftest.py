"""Shared fixtures (real redis-server processes on free ports in temp dirs) and the tier markers.

The tree mirrors the code: ``tests/<tier>/<package>/``. Each test gets the
marker of its tier (``unit``, ``protocol``, ``integration``, ``clients``) from its folder,
so ``pytest -m unit`` runs one tier; CI runs them all.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from slotwarden.procs import RedisFarm, RedisProc

TIERS = ("unit", "protocol", "integration", "clients")
_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.path)).resolve().relative_to(_HERE).parts
        if parts and parts[0] in TIERS:
            item.add_marker(getattr(pytest.mark, parts[0]))


@pytest.fixture
def farm() -> Iterator[RedisFarm]:
    f = RedisFarm()
    try:
        yield f
    finally:
        f.close()


@pytest.fixture(scope="session")
def session_farm() -> Iterator[RedisFarm]:
    f = RedisFarm()
    try:
        yield f
    finally:
        f.close()


@pytest.fixture(scope="session")
def redis_plain(session_farm: RedisFarm) -> RedisProc:
    """One plain redis-server shared by the session (read-only uses: COMMAND ...)."""
    return session_farm.start()


@pytest.fixture(scope="session")
def redis_cluster_node(session_farm: RedisFarm) -> RedisProc:
    """A redis-server with cluster mode on, for CLUSTER KEYSLOT comparisons."""
    return session_farm.start(["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"])


class Cluster:
    """Three real redis-server shards behind a real `slotwarden router` subprocess."""

    def __init__(
        self,
        farm: RedisFarm,
        shards: int = 3,
        extra_router: dict | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        import os

        from slotwarden.procs import RouterProc, write_cluster_yaml

        self.farm = farm
        self.masters = [farm.start() for _ in range(shards)]
        self.config = os.path.join(farm.root, "cluster.yaml")
        self.port, self.admin_port = write_cluster_yaml(
            self.config, self.masters, extra_router=extra_router
        )
        self.router = RouterProc(
            self.config, self.port, os.path.join(farm.root, "router.log"), env=env
        )
        self.router.start()

    def client(self, **kw):
        import redis

        return redis.Redis(port=self.port, socket_timeout=10, **kw)

    def shard_client(self, i: int):
        import redis

        return redis.Redis(port=self.masters[i].port, socket_timeout=10)

    def owner(self, key: bytes | str) -> int:
        from slotwarden.cluster.slots import key_hash_slot

        k = key.encode() if isinstance(key, str) else key
        slot = key_hash_slot(k)
        n = len(self.masters)
        bounds = [round(i * 16384 / n) for i in range(n + 1)]  # as write_cluster_yaml
        return next(i for i in range(n) if bounds[i] <= slot < bounds[i + 1])

    def flush(self) -> None:
        for i in range(len(self.masters)):
            self.shard_client(i).flushall()


@contextlib.contextmanager
def own_cluster(check_exit: bool = False, **kw) -> Iterator[Cluster]:
    """A `Cluster` (``kw``: its arguments) on a `RedisFarm` of its own. On exit the
    router is stopped, then every shard and the temp dir go; with ``check_exit``
    the router must have exited with status 0."""
    farm = RedisFarm()
    c = None
    try:
        c = Cluster(farm, **kw)
        yield c
    finally:
        code = c.router.stop() if c is not None else 0
        farm.close()
        if check_exit and c is not None:
            assert code == 0, c.router.log()


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with own_cluster() as c:
        yield c


@pytest.fixture
def fresh(cluster: Cluster) -> Cluster:
    """The module's cluster, emptied."""
    cluster.flush()
    return cluster
