"""The background mover of one migration: the keys of its slots, source master -> target master.

Owns `MigrationMover` (one per migration of the adopted topology while this
sentinel is the mover; `sentinel.run.movers` starts and stops them) and
the Protocol `MoverHost` through which it reaches its sentinel. Steps
(README *Resharding*):

0. a migration published ``preparing`` (routers hold its slots' requests)
   waits for the routers as in step 1, then asks for the epoch that makes
   it ``moving`` (`MoverHost.advance_migration`, state "starting"); the
   moving migration gets a mover of its own, which starts at step 1 (its
   routers' wait is short: the sentinels push the new epoch at once).
1. **waiting-routers**: every router the sentinels know (`MoverHost.router_epochs`:
   the union of every sentinel's registrations, routers behind pushed to
   again) must report an epoch >= the one in which this sentinel first saw
   the migration; until then nothing moves (a router that does not know the
   migration could still write a key on the source).
2. **counting**: one SCAN of the source; the keys of the migrating slots (not
   the project's own ``__slotwarden:`` keys) and their ``MEMORY USAGE`` are
   ``keys_total`` and the bytes to move.
3. **moving**: SCAN passes; each page's keys are sized (``MEMORY USAGE``, sampled;
   a key near the bound measured again with ``SAMPLES 0`` as the routers do, so a
   huge key is never walked whole just to be sized), big keys (above ``big_key_bytes``) move
   first, one by one, by `sentinel.act.bigkey`, the others in MIGRATEs of at
   most ``batch_keys`` keys (no REPLACE; AUTH2 with the router's backend user
   of the target shard), each pipelined with ``WAIT <source replicas>``; then
   the target is fenced (``PUBLISH __slotwarden:fence`` + ``WAIT``; a master whose
   WAIT answered fewer replicas is asked for that many for 10 s, `wait_counts`). A MIGRATE
   error naming BUSYKEY (the target has the key: its copy is the newer) is
   retried key by key and the busy keys are deleted on the source; any other
   error leaves the keys on the source for the next pass (counted, one
   ``[migrate-error]`` event per 10 s). Keys per second are capped by
   ``keys_per_second`` (a MIGRATE costs its keys, a big key one per chunk; one
   bucket for all the migrations a sentinel moves).
   The masters are re-read from the latest topology before every batch: a
   new source master restarts the pass on it.
   Beside the passes, from step 3 on, `sentinel.act.prio.serve_requests` moves
   at once the keys routers wait for (big or locked keys, which routers never
   MIGRATE): they add them to the migration's request set on the source, and
   it pops them every 50 ms and moves them on a `MigrationMover.lane` (its own
   connections, not paced by ``keys_per_second``); a big key the pass is
   copying when a router asks for it (its lock held) is copied unpaced from
   then on (`MigrationMover.hurry`).
4. **finishing**: a whole pass (started after the routers' ack) that finds no
   key of the slots calls `MoverHost.finish_migration`, repeated every few
   seconds until the topology without the migration is adopted (then the
   task is stopped from outside).

Invariant: every Redis call runs on a connection with a socket timeout; a
node that is down, slow or answering errors makes the mover wait and retry
(state "blocked", with the reason), never raises into the sentinel. The
MIGRATE password is never logged (error texts are scrubbed).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import time
import uuid
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from sentinel.act.bigkey import BigResult, move_big_key
from sentinel.act.nodeconn import node_client
from sentinel.act.prio import serve_requests
from sentinel.decide.migration import (
    FENCE_CHANNEL,
    MoverStats,
    Progress,
    Throttle,
    TokenBucket,
    near_bound,
    routers_behind,
    split,
    wanted,
)
from sentinel.decide.model import Event
from sentinel.errors import LockLost, NotInTopology, SourceMoved
from slotwarden.cluster.config import MigrationConfig
from slotwarden.cluster.secrets import BackendCredentials
from slotwarden.cluster.topology import Address, Migration, SlotMap

log = logging.getLogger("sentinel.mover")

IO_TIMEOUT = 10.0  # socket timeout of every mover connection
MIGRATE_TIMEOUT_MS = 5000  # MIGRATE's own timeout (source -> target)
WAIT_MS = 1000  # WAIT for the replicas after a batch
WAIT_RECHECK_S = 10.0  # a master whose WAIT answered fewer replicas: asked for all again after
SCAN_COUNT = 1000
RETRY_S = 1.0  # after a failed pass (a node down): wait, then a fresh pass
ROUTER_POLL_S = 0.5
FINISH_RETRY_S = 5.0
ADVANCE_RETRY_S = 1.0
EVENT_EVERY_S = 10.0


class MoverHost(Protocol):
    """What a `MigrationMover` needs from its sentinel (`sentinel.run.movers` provides it)."""

    me: str
    stats: MoverStats

    def clock(self) -> float: ...
    def topology_now(self) -> SlotMap: ...
    def settings(self) -> MigrationConfig: ...
    def bucket(self) -> TokenBucket: ...
    def credentials(self, shard: str) -> BackendCredentials | None: ...
    def redis_tls(self) -> dict[str, Any]: ...
    def emit(self, event: Event) -> None: ...
    async def router_epochs(self) -> dict[str, int | None]: ...
    def finish_migration(self, migration: Migration) -> None: ...
    def advance_migration(self, migration: Migration) -> None: ...


def connect(addr: Address, creds: BackendCredentials | None, tls: dict[str, Any]) -> aioredis.Redis:
    """A single-connection client with raw replies (no redis-py parsing) and no retries.
    No CLIENT SETNAME: the router's ACL user may not have it."""
    client = node_client(addr, creds, IO_TIMEOUT, tls)
    client.response_callbacks.clear()  # raw replies: bytes and lists, exact scores
    return client


def _is(reply: object, word: bytes) -> bool:
    return reply == word or reply == word.decode()


class MigrationMover:
    """Moves one migration's keys; `run` until cancelled (or the migration ends)."""

    def __init__(self, host: MoverHost, migration: Migration, since_epoch: int) -> None:
        self.host = host
        self.m = migration
        self.slots = frozenset(migration.slot_set())
        self.progress = Progress(migration, since_epoch, host.me, round(time.time(), 3))
        self.conns: dict[Address, aioredis.Redis] = {}
        self.errors_event = Throttle(EVENT_EVERY_S)
        self.stuck_passes = 0  # passes in a row that found keys and could move none
        self.wait_src = self.wait_dst = 0  # replicas to WAIT for (lowered when fewer answer)
        # "src"/"dst" -> (master, replicas its last short WAIT answered, when); shared with
        # the lane (a shallow copy), so neither pays WAIT_MS per batch for a missing replica
        self.lowered: dict[str, tuple[Address, int, float]] = {}
        self.wait_addrs: tuple[Address, Address] | None = None
        self.started = host.clock()
        self.label = f"{migration.ranges()} {migration.source}->{migration.target}"
        self.paced = True  # keys_per_second applies (not to the lane of requested keys)
        # big keys a router asked for while this mover's pass held their lock: the rest
        # of their copy is not paced (shared with the lane, which adds them)
        self.hurry: set[bytes] = set()
        self.requests: asyncio.Task[None] | None = None  # `sentinel.act.prio`'s loop

    # -- plumbing ---------------------------------------------------------------------

    def emit(self, kind: str, text: str) -> None:
        self.host.emit(Event(kind, f"migration {self.label}: {text}"))

    def conn(self, addr: Address, shard: str) -> aioredis.Redis:
        client = self.conns.get(addr)
        if client is None:
            creds = self.host.credentials(shard)
            client = self.conns[addr] = connect(addr, creds, self.host.redis_tls())
        return client

    async def drop_conns(self) -> None:
        conns, self.conns = self.conns, {}
        for client in conns.values():
            with contextlib.suppress(Exception):
                await client.aclose()

    def masters(self) -> tuple[Address, Address, int, int]:
        """(source master, target master, their replica counts) in the latest topology."""
        topo = self.host.topology_now()
        if self.m not in topo.migrations:
            raise NotInTopology(self.label)
        src = topo.shards[topo.shard_index(self.m.source)]
        dst = topo.shards[topo.shard_index(self.m.target)]
        return src.master, dst.master, len(src.replicas), len(dst.replicas)

    def scrub(self, text: str) -> str:
        creds = self.host.credentials(self.m.target)
        if creds is not None:
            secret = creds.auth_args()[-1].decode("utf-8", "replace")
            text = text.replace(secret, "<hidden>")
        return text

    def lane(self) -> MigrationMover:
        """A second lane on this migration for the keys routers ask for (`sentinel.act.prio`):
        the same progress, counters and events, connections of its own (the pass's
        pipelines stay its own), and not paced: a client waits for those keys."""
        lane = copy.copy(self)
        lane.conns = {}
        lane.paced = False
        lane.requests = None
        return lane

    async def pace_chunk(self, key: bytes) -> None:
        """A big key's chunk: paced like any key, until a router asks for the key (then at
        once: the wait is cut short, looked at every 50 ms)."""
        if not self.paced or key in self.hurry:
            return
        clock = self.host.clock
        until = clock() + self.host.bucket().reserve(1, clock())
        while key not in self.hurry and (left := until - clock()) > 0:
            await asyncio.sleep(min(left, 0.05))

    async def pace(self, n: int) -> None:
        """Wait until ``n`` more keys fit in ``keys_per_second`` (one bucket for all the
        migrations this sentinel moves: `MoverHost.bucket`)."""
        if not self.paced:
            return
        delay = self.host.bucket().reserve(n, self.host.clock())
        if delay > 0:
            await asyncio.sleep(delay)

    # -- the steps --------------------------------------------------------------------

    async def run(self) -> None:
        p = self.progress
        self.emit(
            "migration-started",
            f"mover {self.host.me} takes it up (since epoch {p.since_epoch})",
        )
        try:
            await self.wait_routers()
            if self.m.preparing:
                await self.advance()  # until the topology has it moving: then stopped
            requests = asyncio.get_running_loop().create_task(
                serve_requests(self), name=f"requested keys {self.label}"
            )
            self.requests = requests  # referenced; cancelled with this task (below)
            while True:
                try:
                    if p.keys_total is None:
                        p.state, p.reason = "counting", None
                        await self.count_pass()
                    p.state, p.reason = "moving", None
                    if await self.move_pass() == 0:
                        await self.finish()
                except (RedisError, OSError, TimeoutError, LockLost, SourceMoved) as exc:
                    why = self.scrub(f"{type(exc).__name__}: {exc}")
                    if not isinstance(exc, SourceMoved):
                        p.state, p.reason = "blocked", why
                    log.info("migration %s: pass stopped (%s), retrying", self.label, why)
                    await self.drop_conns()
                    await asyncio.sleep(RETRY_S)
                except NotInTopology:
                    await asyncio.sleep(RETRY_S)
        finally:
            if self.requests is not None:
                self.requests.cancel()
                with contextlib.suppress(BaseException):
                    await self.requests
                self.requests = None
            await self.drop_conns()

    async def wait_routers(self) -> None:
        p = self.progress
        said: list[str] = []
        said_at = -1e9
        while True:
            view = await self.host.router_epochs()
            behind = routers_behind(view, p.since_epoch)
            p.waiting_for = behind
            if not behind:
                return
            now = self.host.clock()
            if behind != said or now - said_at >= EVENT_EVERY_S:
                said, said_at = behind, now
                self.emit(
                    "migration-waiting",
                    f"waiting for routers to reach epoch {p.since_epoch}: " + ", ".join(behind),
                )
            await asyncio.sleep(ROUTER_POLL_S)

    async def advance(self) -> None:
        """Every router holds the slots (runs the preparing epoch): ask for the epoch that
        makes the migration ``moving``; `sentinel.run.movers` then stops this task and
        starts the mover of the moving migration."""
        p = self.progress
        p.state, p.reason = "starting", None
        while True:
            self.host.advance_migration(self.m)
            await asyncio.sleep(ADVANCE_RETRY_S)

    async def finish(self) -> None:
        p = self.progress
        p.state, p.reason = "finishing", None
        p.keys_total = max(p.keys_total or 0, p.keys_moved)
        self.emit("migration-moved", "no key of its slots is left on the source: finishing")
        while True:
            self.host.finish_migration(self.m)
            await asyncio.sleep(FINISH_RETRY_S)

    async def scan(self, src: aioredis.Redis) -> Any:
        """SCAN pages of the source: yields the page's keys of the migrating slots."""
        cursor: Any = 0
        while True:
            cursor, keys = await src.execute_command("SCAN", cursor, "COUNT", SCAN_COUNT)
            mine = wanted(keys, self.slots)
            if mine:
                yield mine
            if int(cursor) == 0:
                return

    async def sizes(
        self, src: aioredis.Redis, keys: list[bytes], exact: bool = True
    ) -> list[tuple[bytes, int | None]]:
        """``MEMORY USAGE`` of each key (None: gone). Sampled first (cheap on a huge key);
        with ``exact``, the ones near ``big_key_bytes`` are measured again with
        ``SAMPLES 0`` (what the routers use), so both sides class a key alike."""
        pipe = src.pipeline(transaction=False)
        for k in keys:
            pipe.execute_command("MEMORY", "USAGE", k)
        replies = await pipe.execute()
        sized = [(k, None if r is None else int(r)) for k, r in zip(keys, replies, strict=True)]
        big = self.host.settings().big_key_bytes
        near = [k for k, size in sized if exact and size is not None and near_bound(size, big)]
        if near:
            pipe = src.pipeline(transaction=False)
            for k in near:
                pipe.execute_command("MEMORY", "USAGE", k, "SAMPLES", 0)
            again = dict(zip(near, await pipe.execute(), strict=True))
            sized = [
                (k, (None if again[k] is None else int(again[k])) if k in again else size)
                for k, size in sized
            ]
        return sized

    async def count_pass(self) -> None:
        src_addr, _, _, _ = self.masters()
        src = self.conn(src_addr, self.m.source)
        total = 0
        nbytes = 0
        async for keys in self.scan(src):
            for _, size in await self.sizes(src, keys, exact=False):
                if size is not None:
                    total += 1
                    nbytes += size
        self.progress.keys_total = self.progress.keys_moved + total
        self.emit("migration-moved", f"counted {total} keys ({nbytes} bytes) on the source")

    async def move_pass(self) -> int:
        """One SCAN pass moving what it finds; the number of keys found."""
        p = self.progress
        cfg = self.host.settings()
        src_addr = self.wait_counts()
        src = self.conn(src_addr, self.m.source)
        moved_before, errors_before = p.keys_moved, p.errors
        found = 0
        started = self.host.clock()
        async for keys in self.scan(src):
            sized = await self.sizes(src, keys)
            page = split(sized, cfg.batch_keys, cfg.big_key_bytes)
            found += len(keys) - page.gone
            size_of = {k: s or 0 for k, s in sized}
            for key in page.big:
                await self.big(src_addr, key, size_of[key], cfg)
            for batch in page.batches:
                await self.batch(src_addr, list(batch), size_of)
        p.passes += 1
        moved, errors = p.keys_moved - moved_before, p.errors - errors_before
        stuck = found and not moved and errors  # e.g. the target is down: nothing can move
        if found and not (stuck and self.stuck_passes):
            self.emit(
                "migration-moved",
                f"pass {p.passes}: {found} keys found, {moved} moved, "
                f"{errors} errors in {self.host.clock() - started:.1f} s",
            )
        if stuck:
            # one event for a run of passes that move nothing (migrate-error says why, at
            # most every 10 s), and a pause before the next one instead of a busy loop
            self.stuck_passes += 1
            await asyncio.sleep(RETRY_S)
        else:
            self.stuck_passes = 0
        return found

    def check_source(self, pass_src: Address) -> Address:
        """The target master now; `SourceMoved` if the source's master changed."""
        src, dst, _, _ = self.masters()
        if src != pass_src:
            raise SourceMoved(f"source master {pass_src} -> {src}")
        return dst

    def failed(self, what: str, exc: BaseException | str, keys: int = 1) -> None:
        p = self.progress
        p.errors += 1
        self.host.stats.errors[(self.m.source, self.m.target)] += 1
        if self.errors_event.allow(self.m, self.host.clock()):
            self.emit(
                "migrate-error",
                self.scrub(f"{what} failed: {exc}; {keys} key(s) stay on the source, retried"),
            )

    def count_moved(self, keys: int, nbytes: int, big: bool = False) -> None:
        self.progress.moved(keys, nbytes, self.host.clock(), big)
        self.host.stats.keys_moved[(self.m.source, self.m.target)] += keys
        self.host.stats.bytes_moved[(self.m.source, self.m.target)] += nbytes

    def migrate_args(self, dst: Address, keys: list[bytes]) -> list[Any]:
        args: list[Any] = ["MIGRATE", dst.host, dst.port, "", 0, MIGRATE_TIMEOUT_MS]
        creds = self.host.credentials(self.m.target)
        if creds is not None:
            auth = creds.auth_args()
            args += ["AUTH2", *auth] if len(auth) == 2 else ["AUTH", *auth]
        return [*args, "KEYS", *keys]

    async def batch(self, src_addr: Address, keys: list[bytes], size_of: dict[bytes, int]) -> None:
        await self.pace(len(keys))
        dst = self.check_source(src_addr)
        src = self.conn(src_addr, self.m.source)
        pipe = src.pipeline(transaction=False)
        pipe.execute_command(*self.migrate_args(dst, keys))
        pipe.execute_command("WAIT", self.wait_src, WAIT_MS)
        reply, waited = await pipe.execute(raise_on_error=False)
        self.lower_wait(waited, "src")
        if _is(reply, b"OK"):
            self.count_moved(len(keys), sum(size_of[k] for k in keys))
            await self.fence(dst)
        elif _is(reply, b"NOKEY"):
            return
        elif isinstance(reply, ResponseError) and "BUSYKEY" in str(reply):
            await self.one_by_one(src, dst, keys, size_of)
        else:
            self.failed(f"MIGRATE of {len(keys)} keys to {dst}", reply, len(keys))

    async def one_by_one(
        self, src: aioredis.Redis, dst: Address, keys: list[bytes], size_of: dict[bytes, int]
    ) -> None:
        """After a BUSYKEY: each key again; a busy one is deleted on the source (the
        target's copy is the newer one: MIGRATE never overwrites it)."""
        moved = nbytes = 0
        for key in keys:
            try:
                reply = await src.execute_command(*self.migrate_args(dst, [key]))
            except ResponseError as exc:
                if "BUSYKEY" in str(exc):
                    await src.execute_command("DEL", key)
                    moved += 1
                else:
                    self.failed(f"MIGRATE of a key to {dst}", exc)
                continue
            moved += 1  # OK, or NOKEY: the batch moved it before its BUSYKEY
            nbytes += size_of[key] if _is(reply, b"OK") else 0
        await src.execute_command("WAIT", self.wait_src, WAIT_MS)
        self.count_moved(moved, nbytes)
        await self.fence(dst)

    async def fence(self, dst: Address) -> None:
        """The target's replicas have what was just restored on it before the next batch."""
        conn = self.conn(dst, self.m.target)
        pipe = conn.pipeline(transaction=False)
        pipe.execute_command("PUBLISH", FENCE_CHANNEL, b"x")
        pipe.execute_command("WAIT", self.wait_dst, WAIT_MS)
        _, waited = await pipe.execute(raise_on_error=False)
        self.lower_wait(waited, "dst")

    def wait_counts(self) -> Address:
        """The masters of the latest topology (the source's returned) and how many replicas
        to WAIT for on each: all of them, or as many as the last WAIT on that master
        answered if that was fewer and less than `WAIT_RECHECK_S` ago (a replica down or
        still in its first sync must not cost WAIT_MS per batch, nor a waiting client
        WAIT_MS per key it asked for)."""
        src, dst, n_src, n_dst = self.masters()
        now = self.host.clock()
        counts = []
        for which, addr, n in (("src", src, n_src), ("dst", dst, n_dst)):
            low = self.lowered.get(which)
            fresh = low is not None and low[0] == addr and now - low[2] < WAIT_RECHECK_S
            counts.append(min(n, low[1]) if fresh and low is not None else n)
        self.wait_src, self.wait_dst = counts
        self.wait_addrs = (src, dst)
        return src

    def lower_wait(self, waited: object, which: str) -> None:
        """WAIT answered fewer replicas than asked: ask for that many from now on on that
        master, for `WAIT_RECHECK_S` (`wait_counts`)."""
        if not isinstance(waited, int) or self.wait_addrs is None:
            return
        if which == "src" and waited < self.wait_src:
            self.wait_src = waited
            self.lowered["src"] = (self.wait_addrs[0], waited, self.host.clock())
        if which == "dst" and waited < self.wait_dst:
            self.wait_dst = waited
            self.lowered["dst"] = (self.wait_addrs[1], waited, self.host.clock())

    async def big(self, src_addr: Address, key: bytes, size: int, cfg: MigrationConfig) -> None:
        dst_addr = self.check_source(src_addr)
        src = self.conn(src_addr, self.m.source)
        dst = self.conn(dst_addr, self.m.target)
        holder = f"{self.host.me}-{uuid.uuid4().hex[:12]}".encode()
        try:
            result = await move_big_key(
                src,
                dst,
                key,
                holder,
                chunk_items=cfg.chunk_items,
                chunk_bytes=cfg.big_key_bytes,
                pace=lambda: self.pace_chunk(key),
                fence=lambda: self.fence(dst_addr),
            )
        except (ResponseError, LockLost) as exc:
            self.failed(f"chunked move of a big key ({size} bytes) to {dst_addr}", exc)
            return
        finally:
            self.hurry.discard(key)
        if result is BigResult.MOVED:
            await src.execute_command("WAIT", self.wait_src, WAIT_MS)
            self.count_moved(1, size, big=True)
        elif result in (BigResult.BUSY, BigResult.GONE):
            self.count_moved(1, 0)
