"""Reading ``INFO memory`` of the masters a new migration involves (the room check).

Owns that one side effect. The leader calls `memory_of` before it publishes
new migrations; the decision is `sentinel.decide.room.room_problems`. It
connects as the ROUTER's backend user (cluster.yaml ``backend:`` or the
shard's own ``backend:``), as the mover does: that user may run ``INFO
memory`` and the sentinels' own user (`sentinel.act.acl`) stays minimal.
Invariant: every read finishes within its timeout; a node that is down,
hung, refuses the user or answers an error reads as None (logged, with no
secret), never raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping

from redis.exceptions import RedisError

from sentinel.act.nodeconn import node_client
from sentinel.decide.room import Memory
from slotwarden.cluster.config import ClusterConfig
from slotwarden.cluster.errors import SecretError
from slotwarden.cluster.secrets import backend_credentials
from slotwarden.cluster.tls import redis_py_kwargs
from slotwarden.cluster.topology import Address, SlotMap

log = logging.getLogger("sentinel.room")


async def info_memory(
    addr: Address,
    config: ClusterConfig,
    shard: str,
    timeout: float,
    name: str,
    via: Address | None = None,
) -> Memory | None:
    """``INFO memory`` of ``addr`` (a node of ``shard``) as the router's user, or None."""
    section = config.backend
    for sc in config.shards:
        if sc.name == shard and sc.backend is not None:
            section = sc.backend
    try:
        creds = backend_credentials(section)
    except SecretError as exc:
        log.warning("INFO memory on %s: no credentials: %s", addr, exc)
        return None
    client = node_client(via or addr, creds, timeout, redis_py_kwargs(config.tls), name)
    try:
        async with asyncio.timeout(timeout):
            return Memory.parse(await client.info("memory"))
    except (RedisError, OSError, TimeoutError, ValueError, TypeError) as exc:
        log.warning("INFO memory on %s failed: %s: %s", addr, type(exc).__name__, exc)
        return None
    finally:
        with contextlib.suppress(Exception):
            await client.aclose()


async def memory_of(
    topology: SlotMap,
    shards: set[str],
    config: ClusterConfig,
    timeout: float,
    name: str,
    routes: Mapping[Address, Address] | None = None,
) -> dict[str, Memory | None]:
    """Shard name -> `Memory` of its current master in ``topology`` (None: unreadable),
    for each of ``shards``, read concurrently."""
    names = sorted(shards)
    masters = [topology.shards[topology.shard_index(n)].master for n in names]
    routes = routes or {}
    reads = await asyncio.gather(
        *(
            info_memory(m, config, n, timeout, name, routes.get(m))
            for n, m in zip(names, masters, strict=True)
        )
    )
    return dict(zip(names, reads, strict=True))
