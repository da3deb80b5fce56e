"""The keys routers wait for, moved next: the second loop of a migration's mover.

A router never MIGRATEs a big key (above ``sentinel.migration.big_key_bytes``)
nor a locked one: it waits until the mover has moved it, up to
``router.command_timeout_ms``. The mover's SCAN pass reaches a key when it
reaches it, so a router that waits adds the key to the migration's request
set on the source (``SADD __slotwarden:wanted:<lowest slot>``,
`slotwarden.cluster.ownkeys.wanted_key`; again every 250 ms while it waits).
`serve_requests` runs beside the passes of one `sentinel.act.mover.MigrationMover`
once its migration is ``moving``: every `POLL_S` it pops up to `POP` keys
(``SPOP``) from that set on the CURRENT source master and moves them at once,
on a `Lane` of the mover (its own connections; the same progress and
counters): the keys of the migration's slots that are still on the source and
not locked (a locked key is being moved already: skipped, but put in the
mover's ``hurry`` set, so that if its own pass holds the lock the rest of that
copy is not paced), big ones by
`sentinel.act.bigkey` under the lock, small ones (a key that shrank since it
was asked for) by MIGRATE like the pass. ``keys_per_second`` does not apply
to them: a client waits for each.

One set per migration, so a mover pops only its own migration's keys (several
migrations may share a source) and never puts any back. A popped key whose
move fails is lost from the set; the router asks again while it still waits.

Invariant: every call is bounded by the mover's socket timeouts; an error
(a node down, a failover) makes the loop wait `RETRY_S` and go on, never
raises into the sentinel; the MIGRATE password is never logged (scrubbed).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from sentinel.decide.migration import lock_key, split, wanted
from sentinel.errors import LockLost, NotInTopology, SourceMoved
from slotwarden.cluster.config import MigrationConfig
from slotwarden.cluster.ownkeys import wanted_key
from slotwarden.cluster.topology import Address, Migration

log = logging.getLogger("sentinel.mover")

POLL_S = 0.05  # the request set is looked at this often while it is empty
POP = 32  # keys popped at a time (a full pop: looked at again at once)
RETRY_S = 1.0  # after an error (a node down, a failover): wait, then go on
HURRY_MAX = 10_000  # bound of `Lane.hurry`


class _Settings(Protocol):
    def settings(self) -> MigrationConfig: ...


class Lane(Protocol):
    """What `serve_requests` uses of a mover (`sentinel.act.mover.MigrationMover.lane`)."""

    m: Migration
    slots: frozenset[int]
    hurry: set[bytes]
    wait_src: int
    wait_dst: int

    @property
    def host(self) -> _Settings: ...

    def wait_counts(self) -> Address: ...
    def conn(self, addr: Address, shard: str) -> aioredis.Redis: ...
    def scrub(self, text: str) -> str: ...
    async def drop_conns(self) -> None: ...
    async def sizes(
        self, src: aioredis.Redis, keys: list[bytes], exact: bool = True
    ) -> list[tuple[bytes, int | None]]: ...
    async def big(self, src_addr: Address, key: bytes, size: int, cfg: MigrationConfig) -> None: ...
    async def batch(
        self, src_addr: Address, keys: list[bytes], size_of: dict[bytes, int]
    ) -> None: ...


class _Mover(Protocol):
    label: str

    def lane(self) -> Lane: ...


async def serve_requests(mover: _Mover) -> None:
    """Until cancelled: the keys routers ask for, moved as they come (module docstring)."""
    lane = mover.lane()
    name = wanted_key(lane.m)
    try:
        while True:
            try:
                if not await serve_once(lane, name):
                    await asyncio.sleep(POLL_S)
            except NotInTopology:  # the migration ended or changed: stopped from outside
                await asyncio.sleep(RETRY_S)
            except (RedisError, OSError, TimeoutError, LockLost, SourceMoved) as exc:
                why = lane.scrub(f"{type(exc).__name__}: {exc}")
                log.info("migration %s: requested keys: %s, retrying", mover.label, why)
                await lane.drop_conns()
                await asyncio.sleep(RETRY_S)
            except Exception:  # never into the sentinel; the routers ask again
                log.exception("migration %s: requested keys failed, retrying", mover.label)
                await lane.drop_conns()
                await asyncio.sleep(RETRY_S)
    finally:
        await lane.drop_conns()


async def serve_once(lane: Lane, name: bytes) -> bool:
    """One ``SPOP name POP`` on the source master and the moves of what it returned;
    True when the pop was full (more may be waiting)."""
    src_addr = lane.wait_counts()
    src = lane.conn(src_addr, lane.m.source)
    popped: list[bytes] = await src.execute_command("SPOP", name, POP) or []
    keys = wanted(popped, lane.slots)
    if keys:
        locks = await src.execute_command("MGET", *(lock_key(k) for k in keys))
        free = [k for k, lock in zip(keys, locks, strict=True) if lock is None]
        if len(lane.hurry) > HURRY_MAX:  # keys locked by another sentinel stay in it
            lane.hurry.clear()
        lane.hurry.update(k for k in keys if k not in free)  # being moved: no more pacing
        sized = await lane.sizes(src, free) if free else []
        cfg = lane.host.settings()
        page = split(sized, cfg.batch_keys, cfg.big_key_bytes)
        size_of = {k: size or 0 for k, size in sized}
        for key in page.big:
            await lane.big(src_addr, key, size_of[key], cfg)
        for batch in page.batches:
            await lane.batch(src_addr, list(batch), size_of)
    return len(popped) >= POP
