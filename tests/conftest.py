"""Shared fixtures: real redis-server processes on free ports in temp dirs."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from redis_procs import RedisFarm, RedisProc  # noqa: E402


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
    return session_farm.start(["--cluster-enabled", "yes",
                               "--cluster-config-file", "nodes.conf"])
