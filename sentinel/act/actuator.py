"""Commands that change a node's replication role, each with a deadline.

Owns the side effects of a failover and of reconciliation: ``REPLICAOF NO
ONE`` (`promote`), ``ROLE`` (`check_master`), ``REPLICAOF host port``
(`repoint`), and for a planned switchover ``CLIENT PAUSE ms WRITE`` /
``CLIENT UNPAUSE`` and the offsets check (`caught_up`). Invariant: every
call finishes within its timeout and returns True/False with the reason in
the log; none raises for a node that is down, hung or answering an error.
A fresh connection is used per call so a hung node cannot wedge a shared
one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from redis.exceptions import RedisError

from sentinel.act.probe import connect
from slotwarden.cluster.topology import Address

log = logging.getLogger("sentinel.actuator")


class Actuator:
    def __init__(self, name: str, timeout: float, routes: Mapping[Address, Address]) -> None:
        self.name = name
        self.timeout = timeout
        self.routes = routes  # node -> where to reach it (normally itself)

    async def _call(self, addr: Address, *args: Any) -> Any:
        client = connect(self.routes.get(addr, addr), self.timeout, self.name)
        try:
            return await client.execute_command(*args)
        finally:
            with contextlib.suppress(Exception):
                await client.aclose()

    async def _try(self, what: str, addr: Address, *args: Any) -> Any:
        try:
            async with asyncio.timeout(self.timeout):
                return await self._call(addr, *args)
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("%s on %s failed: %s: %s", what, addr, type(exc).__name__, exc)
            return None

    async def promote(self, addr: Address) -> bool:
        reply = await self._try("REPLICAOF NO ONE", addr, "REPLICAOF", "NO", "ONE")
        return reply is not None

    async def check_master(self, addr: Address) -> bool:
        reply = await self._try("ROLE", addr, "ROLE")
        return bool(reply) and reply[0] in (b"master", "master")

    async def repoint(self, addr: Address, master: Address) -> bool:
        reply = await self._try(
            f"REPLICAOF {master}", addr, "REPLICAOF", master.host, str(master.port)
        )
        return reply is not None

    async def pause_writes(self, addr: Address, ms: int) -> bool:
        reply = await self._try("CLIENT PAUSE WRITE", addr, "CLIENT", "PAUSE", str(ms), "WRITE")
        return reply is not None

    async def unpause(self, addr: Address) -> bool:
        return await self._try("CLIENT UNPAUSE", addr, "CLIENT", "UNPAUSE") is not None

    async def caught_up(self, master: Address, replica: Address) -> bool:
        """True once ``replica`` has processed everything ``master`` has written."""
        m = await self._try("INFO replication", master, "INFO", "replication")
        r = await self._try("INFO replication", replica, "INFO", "replication")
        if not isinstance(m, dict) or not isinstance(r, dict):
            return False
        return int(r.get("slave_repl_offset", -1)) >= int(m.get("master_repl_offset", 0))
