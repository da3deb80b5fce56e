"""Probing one Redis node: PING + INFO replication on a timer, kept as a `NodeObs`.

The observation includes what replica eligibility needs (whether a replica
ever completed a sync, the node's recent offsets, and - for a master that
came back with a lower replication offset, i.e. restarted
without its data - what it held before, `Restart`; `sentinel.decide.eligible`).

Owns the connection the sentinel uses to watch a node and the observation
built from it. Invariant: `Prober.obs.last_ok` moves forward only on a
valid reply to both PING and INFO; a refused connection, a timeout (a hung
process with its socket still open) or an error reply leaves it where it
was, so the detector sees the node go silent. Each probe has a deadline of
``down_after`` (a slow reply is still a reply); after any failure the
connection is dropped and a fresh one is opened for the next probe. With
cluster.yaml ``tls.backends`` every connection to a node (probes and the
actuator's) is Redis TLS, verifying the node against ``tls.ca_file`` and
presenting ``tls.cert_file`` as the client certificate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from sentinel.act.nodeconn import node_client
from sentinel.decide.eligible import remember_offset
from sentinel.decide.model import NodeObs, NodeRole, Restart, Timing
from slotwarden.cluster.config import ClusterConfig
from slotwarden.cluster.secrets import BackendCredentials, backend_credentials
from slotwarden.cluster.tls import redis_py_kwargs
from slotwarden.cluster.topology import Address

log = logging.getLogger("sentinel.probe")

Clock = Callable[[], float]


# The sentinels' node credentials, set at start and on reload by
# `set_backend_auth`: cluster.yaml ``sentinel.backend`` (their own ACL user,
# sentinel.act.acl), else the router's (``backend:`` / ``shards[].backend``).
_AUTH: dict[Address, BackendCredentials | None] = {}
_DEFAULT_AUTH: list[BackendCredentials | None] = [None]
_TLS: dict[str, Any] = {}  # redis-py TLS arguments (cluster.yaml tls.backends), or none


def set_backend_auth(config: ClusterConfig) -> None:
    """Use ``config``'s sentinel credentials on every connection to a node:
    ``sentinel.backend`` for every node when set, else the router's ones.
    Raises `slotwarden.cluster.errors.SecretError` if a password cannot be read."""
    _TLS.clear()
    _TLS.update(redis_py_kwargs(config.tls))
    own = config.sentinel.backend if config.sentinel is not None else None
    if own is not None:
        _DEFAULT_AUTH[0] = backend_credentials(own)
        _AUTH.clear()
        return
    default = backend_credentials(config.backend)
    per_node: dict[Address, BackendCredentials | None] = {}
    for shard in config.shards:
        if shard.backend is not None:
            creds = backend_credentials(shard.backend)
            for node in (shard.master, *shard.replicas):
                per_node[node] = creds
    _DEFAULT_AUTH[0] = default
    _AUTH.clear()
    _AUTH.update(per_node)


def connect(via: Address, timeout: float, name: str) -> aioredis.Redis:
    """A single-connection client that never retries on its own (we decide),
    authenticated with the backend credentials when cluster.yaml has some."""
    return node_client(via, _AUTH.get(via, _DEFAULT_AUTH[0]), timeout, _TLS, name)


def parse_replication(info: Mapping[str, Any], prev: NodeObs, now: float) -> NodeObs:
    """Fold one parsed ``INFO replication`` into the node's observation."""
    role = NodeRole.MASTER if info.get("role") == "master" else NodeRole.REPLICA
    master = None
    link_up = never_synced = syncing = False
    link_down = 0.0
    if role is NodeRole.REPLICA:
        host = info.get("master_host")
        port = info.get("master_port")
        if host and isinstance(port, int):
            master = Address(str(host), port)
        link_up = info.get("master_link_status") == "up"
        raw_down = float(info.get("master_link_down_since_seconds", 0) or 0)
        link_down = max(raw_down, 0.0)
        # -1: Redis's "down since ever" - this replica never completed a sync
        never_synced = not link_up and raw_down < 0
        syncing = int(info.get("master_sync_in_progress", 0) or 0) == 1
        offset = int(info.get("slave_repl_offset", 0) or 0)
    else:
        offset = int(info.get("master_repl_offset", 0) or 0)
    priority = int(info.get("slave_priority", info.get("replica_priority", 100)) or 0)
    changed = role is not prev.role or master != prev.master
    replid = str(info.get("master_replid", "") or "")
    restart = prev.restart if role is NodeRole.MASTER else None
    if (
        restart is None
        and role is NodeRole.MASTER
        and prev.role is NodeRole.MASTER
        and offset < prev.offset
    ):
        # A master's offset never goes down: it restarted and lost (some of) its data.
        # (A new replication ID alone is no loss: a promotion or an RDB restart.)
        restart = Restart(now, prev.replid, prev.offset, prev.last_ok, prev.offsets)
    return replace(
        prev,
        last_ok=now,
        role=role,
        master=master,
        link_up=link_up,
        link_down_s=link_down,
        never_synced=never_synced,
        sync_in_progress=syncing,
        offset=offset,
        priority=priority,
        info_at=now,
        role_since=now if changed or prev.role_since is None else prev.role_since,
        replid=replid,
        restart=restart,
    )


class Prober:
    """Probes ``addr`` (reached at ``via``) every probe interval until cancelled."""

    def __init__(
        self,
        addr: Address,
        timing: Timing,
        name: str,
        via: Address | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.addr = addr
        self.via = via or addr
        self.timing = timing
        self.name = name
        self.clock = clock
        self.obs = NodeObs(addr, last_ok=clock())
        self.last_error = ""
        self.probed = asyncio.Event()  # set after every probe, for tests and first snapshots

    async def probe_once(self, client: aioredis.Redis) -> None:
        async with asyncio.timeout(self.timing.down_after):
            pipe = client.pipeline(transaction=False)
            pipe.ping()
            pipe.info("replication")
            pong, info = await pipe.execute()
        if pong is not True or not isinstance(info, dict):
            raise RedisError(f"unexpected probe reply {pong!r}")
        obs = parse_replication(info, self.obs, self.clock())
        keep = self.timing.replica_lag
        self.obs = replace(obs, offsets=remember_offset(obs.offsets, obs.last_ok, obs.offset, keep))
        self.last_error = ""

    async def run(self) -> None:
        client: aioredis.Redis | None = None
        try:
            while True:
                started = self.clock()
                if client is None:
                    client = connect(self.via, self.timing.down_after, self.name)
                try:
                    await self.probe_once(client)
                except (RedisError, OSError, TimeoutError) as exc:
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    with contextlib.suppress(Exception):
                        await client.aclose()
                    client = None
                self.probed.set()
                _reraise_swallowed_cancel()
                elapsed = self.clock() - started
                await asyncio.sleep(max(self.timing.probe_interval - elapsed, 0.0))
        finally:
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.aclose()


def _reraise_swallowed_cancel() -> None:
    """Re-raise a cancellation that a client library caught and dropped.

    Seen at start-up when the TaskGroup cancels a prober in the middle of the
    first connection: without this the prober kept running and the process
    could not exit.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
