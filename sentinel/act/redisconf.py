"""Applying cluster.yaml's ``redis:`` settings to every node: CONFIG GET, CONFIG SET.

Owns `RedisConfigApplier`, one task per sentinel. Every `INTERVAL` seconds, and
within `WAKE` seconds of a new topology or a reloaded cluster.yaml, it reads
(``CONFIG GET``, one per key, pipelined) the settings the ``redis:`` blocks name
on every node of every shard of the current topology (`sentinel.decide.redisconf`:
promoted and added nodes included, and those cluster.yaml lists but the topology
does not yet). When this sentinel is the applier (the lowest
id among those it sees alive) it ``CONFIG SET``s each key that differs, one at a
time, and reads it back: event ``[redis-config] set maxmemory=104857600 on
127.0.0.1:7001 ...`` once per change. A node that refuses a value (an error, or an
answer that still differs after the SET) gets event ``[redis-config-drift]`` once
for that value and answer; it is asked again on every pass, silently. Whatever
still differs after a pass is `drift` (``GET /status`` ``"redis_config"``); the
other sentinels report what they read and set nothing.

Connections: `sentinel.act.probe.connect`, i.e. the sentinels' own user
(``sentinel.backend``), whose ACL rule (`sentinel.act.acl`) has ``config|get`` and
``config|set``; TLS as every sentinel connection. Each node's pass is bounded by
`NODE_TIMEOUT`; a node that does not answer is skipped (the prober reports it).
A key removed from the blocks is no longer looked at: the nodes keep its value.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError

from sentinel.act.probe import connect
from sentinel.decide.model import Event, PeerOpinion
from sentinel.decide.redisconf import Drift, NodeWant, differences, is_applier, wanted
from slotwarden.cluster.config import ClusterConfig
from slotwarden.cluster.redisconf import same
from slotwarden.cluster.topology import Address, SlotMap

INTERVAL = 5.0  # seconds between full passes over the nodes
WAKE = 0.2  # how often a new topology or config is looked for
NODE_TIMEOUT = 2.0  # one node's CONFIG GETs and SETs
# Until the peers' opinions came in (every 0.5 s at most when calm), every sentinel
# would think it is the applier.
FIRST_PASS_AFTER = 3.0

State = Callable[[], tuple[ClusterConfig, SlotMap]]  # the running config and topology


class RedisConfigApplier:
    def __init__(
        self,
        me: str,
        name: str,
        state: State,
        opinions: Mapping[str, PeerOpinion],
        emit: Callable[[Event], None],
        routes: Mapping[Address, Address] | None = None,
        clock: Callable[[], float] = time.monotonic,  # the opinions' clock
    ) -> None:
        self.me = me
        self.name = name  # CLIENT SETNAME of the connections
        self.state = state
        self.opinions = opinions
        self.emit = emit
        self.routes = routes or {}
        self.clock = clock
        self.clients: dict[Address, aioredis.Redis] = {}
        self.drift: list[Drift] = []
        self.applier = False
        self.passes = 0
        # (node, key) -> (wanted value, what the node reported, why): refusals reported
        self.refused: dict[tuple[Address, str], tuple[str, str | None, str]] = {}

    def status(self) -> dict[str, Any]:
        """``GET /status`` ``"redis_config"``."""
        return {"applier": self.applier, "drift": [d.to_dict() for d in self.drift]}

    async def run(self) -> None:
        """A pass every `INTERVAL`, and one as soon as the config or topology changed;
        the first one `FIRST_PASS_AFTER` the start, once the peers have been heard."""
        config, topology = self.state()
        seen = (config, topology.epoch)
        first = due = time.monotonic() + FIRST_PASS_AFTER
        try:
            while True:
                config, topology = self.state()
                if config is not seen[0] or topology.epoch != seen[1]:
                    due = max(time.monotonic(), first)
                if time.monotonic() >= due:
                    seen = (config, topology.epoch)
                    await self.apply_once(config, topology)
                    due = time.monotonic() + INTERVAL
                    task = asyncio.current_task()
                    if task is not None and task.cancelling():
                        raise asyncio.CancelledError  # one a client library swallowed
                await asyncio.sleep(WAKE)
        finally:
            await self.close(self.clients)

    async def apply_once(self, config: ClusterConfig, topology: SlotMap) -> None:
        """One pass over every node of ``topology``."""
        self.applier = is_applier(self.me, self.opinions.values(), self.clock())
        nodes = wanted(config, topology)
        gone = {a: c for a, c in self.clients.items() if a not in {n.addr for n in nodes}}
        for addr in gone:
            del self.clients[addr]
        await self.close(gone)
        found = await asyncio.gather(*(self.node(n) for n in nodes))
        self.drift = [d for entries in found for d in entries]
        self.passes += 1

    async def node(self, want: NodeWant) -> list[Drift]:
        """Read (and, as the applier, fix) one node; what still differs afterwards.
        A kept connection the node closed meanwhile (its ``timeout`` setting) is
        replaced once, within the same deadline."""
        try:
            async with asyncio.timeout(NODE_TIMEOUT):
                for fresh in (want.addr not in self.clients, True):
                    client = self.clients.get(want.addr)
                    if client is None:
                        via = self.routes.get(want.addr, want.addr)
                        client = self.clients[want.addr] = connect(via, NODE_TIMEOUT, self.name)
                    try:
                        return await self.check(client, want)
                    except (RedisConnectionError, OSError):
                        await self.close({want.addr: self.clients.pop(want.addr)})
                        if fresh:
                            raise
        except (RedisError, OSError, TimeoutError):
            client = self.clients.pop(want.addr, None)
            if client is not None:
                await self.close({want.addr: client})
        return []  # unreachable: the prober says so; no verdict on its settings

    async def check(self, client: aioredis.Redis, want: NodeWant) -> list[Drift]:
        have = await read(client, want.settings)
        out = []
        for key in differences(want.settings, have):
            value, now = want.settings[key], have.get(key)
            if isinstance(now, Failed):
                if self.applier:
                    self.report(want, key, value, None, now, f"refused CONFIG GET: {now}")
                out.append(Drift(str(want.addr), want.shard, key, value, None, str(now)))
                continue
            current, error = now, None
            if self.applier:
                current, error = await self.set(client, want, key, now)
            if error is None and current is not None and same(key, value, current):
                continue
            out.append(Drift(str(want.addr), want.shard, key, value, current, error))
        drifting = {d.key for d in out}
        for key in want.settings:
            if key not in drifting:
                self.refused.pop((want.addr, key), None)
        return out

    async def set(
        self, client: aioredis.Redis, want: NodeWant, key: str, before: str | None
    ) -> tuple[str | None, str | None]:
        """CONFIG SET ``key`` on the node (again on every pass while it refuses: its ACL
        or state may change); then (what it reports now, why it still differs, if it does)."""
        value = want.settings[key]
        try:
            await client.config_set(key, value)
        except ResponseError as exc:
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            self.report(want, key, value, before, text, f"refused CONFIG SET: {text}")
            return before, text
        after = (await read(client, {key: value})).get(key)
        if after is None or isinstance(after, Failed) or not same(key, value, after):
            shown = None if isinstance(after, Failed) else after
            why = f"took CONFIG SET but reports {key}={shown}"
            self.report(want, key, value, shown, why, why)
            return shown, why
        self.emit(
            Event(
                "redis-config",
                f"set {key}={value} on {want.addr} (shard {want.shard}; was {before})",
                shard=want.shard,
                addr=str(want.addr),
            )
        )
        return after, None

    def report(
        self,
        want: NodeWant,
        key: str,
        value: str,
        have: str | None,
        reason: str,
        what: str,
    ) -> None:
        """Event ``[redis-config-drift]`` once per node, key, wanted value and answer
        (until the node runs the value)."""
        entry = (value, have, reason)
        if self.refused.get((want.addr, key)) == entry:
            return
        self.refused[(want.addr, key)] = entry
        self.emit(
            Event(
                "redis-config-drift",
                f"{want.addr} (shard {want.shard}) runs {key}={have}, cluster.yaml says "
                f"{value}: the node {what}",
                shard=want.shard,
                addr=str(want.addr),
            )
        )

    @staticmethod
    async def close(clients: Mapping[Address, aioredis.Redis]) -> None:
        for client in clients.values():
            with contextlib.suppress(Exception):
                await client.aclose()


class Failed(str):
    """A CONFIG GET that answered an error (NOPERM ...): the error's text."""

    __slots__ = ()


async def read(client: aioredis.Redis, keys: Iterable[str]) -> dict[str, str | None]:
    """CONFIG GET of each key (pipelined): value, `Failed` (an error reply) or None
    (the node does not know the setting)."""
    names = list(keys)
    pipe = client.pipeline(transaction=False)
    for key in names:
        pipe.config_get(key)
    replies = await pipe.execute(raise_on_error=False)
    out: dict[str, str | None] = {}
    for key, reply in zip(names, replies, strict=True):
        if isinstance(reply, Exception):
            if not isinstance(reply, ResponseError):
                raise reply
            out[key] = Failed(str(reply).splitlines()[0] if str(reply) else "error")
            continue
        value = _value_of(reply, key)
        out[key] = value
    return out


def _value_of(reply: object, key: str) -> str | None:
    if not isinstance(reply, dict):
        return None
    for name, value in reply.items():
        text = name.decode() if isinstance(name, bytes) else str(name)
        if text.lower() == key:
            return value.decode() if isinstance(value, bytes) else str(value)
    return None
