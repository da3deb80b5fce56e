"""Moving one big key from a source master to a target master in chunks, under its lock.

Owns the big-key protocol of the resharding design (README *Resharding*): a
key whose ``MEMORY USAGE`` is above ``sentinel.migration.big_key_bytes`` is
never moved by one MIGRATE (that would block the source for the whole key).
`move_big_key`:

1. ``SET __slotwarden:lock:<key> <holder> NX PX 10000`` on the source (taken
   by someone else: skipped, the next pass tries again); routers do not
   MIGRATE a locked key, they wait until it is gone from the source;
2. sleeps 50 ms (a router MIGRATE already in flight lands first), then reads
   the key's type and absolute expiry (``PEXPIRETIME``) - gone: nothing to do;
3. copies it into ``__slotwarden:tmp:<holder>:<key>`` on the target, at most
   ``chunk_items`` elements per command on either side: hash HSCAN -> HSET,
   set SSCAN -> SADD, zset ZSCAN -> ZADD (scores as Redis prints them, exact),
   list LRANGE -> RPUSH, stream XRANGE -> XADD with the entries' own ids, then
   XSETID with the last id, entries-added and max-deleted-id; a string is one
   value: GETRANGE -> APPEND in pieces of ``big_key_bytes`` bytes. A stream with
   consumer groups, and any other type (module types), moves whole by DUMP +
   RESTORE: bounded by the key's size, not by a chunk (documented). The temp
   key carries a 60 s expiry, renewed per chunk, so a crashed mover leaves no
   garbage; the lock is renewed at least every 2 s (it expires after 10 s);
4. on the target, in one MULTI: the source's expiry (PEXPIREAT, or PERSIST),
   then ``RENAMENX tmp key`` (0: a router moved the key meanwhile - the
   target's copy is newer, the temp key is dropped);
5. ``fence()`` (the caller's: the target's replicas have it), then ``DEL key``
   on the source, then the lock's DEL (only if it is still ours).

Invariant: the key is deleted on the source only once the target holds it
(ours or newer); on any error the source keeps it and the temp key expires.
Every call runs on connections whose socket timeout bounds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any

import redis.asyncio as aioredis

from sentinel.decide.migration import lock_key, tmp_key
from sentinel.errors import LockLost

LOCK_MS = 10000  # the lock's expiry
LOCK_REFRESH_S = 2.0  # renewed at least this often (the design: at least every 3 s)
SETTLE_S = 0.05  # after taking the lock: a router MIGRATE in flight lands first
TMP_MS = 60000  # a temp key left by a crashed mover is gone after this


class BigResult(Enum):
    MOVED = "moved"  # the target now holds our copy; the source's is deleted
    BUSY = "busy"  # the target already had the key (newer): the source's copy deleted
    GONE = "gone"  # not on the source any more (moved or expired meanwhile)
    LOCKED = "locked"  # another mover holds the lock: try again next pass


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _pairs(reply: Any) -> dict[str, Any]:
    """A RESP map (a flat list of pairs, or already a dict) with str keys."""
    if isinstance(reply, dict):
        return {_s(k): v for k, v in reply.items()}
    return {_s(reply[i]): reply[i + 1] for i in range(0, len(reply) - 1, 2)}


class _Copy:
    """One copy in progress: the connections, the lock, the temp key, the pacing."""

    def __init__(
        self,
        src: aioredis.Redis,
        dst: aioredis.Redis,
        key: bytes,
        holder: bytes,
        chunk_items: int,
        chunk_bytes: int,
        pace: Callable[[], Awaitable[None]],
    ) -> None:
        self.src, self.dst, self.key = src, dst, key
        self.holder = holder
        self.lock = lock_key(key)
        self.tmp = tmp_key(holder, key)
        self.chunk = max(chunk_items, 1)
        self.chunk_bytes = max(chunk_bytes, 1)
        self.pace = pace
        self.refreshed = time.monotonic()

    async def write(self, *args: Any) -> None:
        """One chunk written to the temp key, its expiry renewed; then the lock and pace."""
        pipe = self.dst.pipeline(transaction=False)
        pipe.execute_command(*args)
        pipe.execute_command("PEXPIRE", self.tmp, TMP_MS)
        await pipe.execute()
        if time.monotonic() - self.refreshed >= LOCK_REFRESH_S:
            if await self.src.execute_command("GET", self.lock) != self.holder:
                raise LockLost(f"lock of {self.key!r} lost")
            await self.src.execute_command("PEXPIRE", self.lock, LOCK_MS)
            self.refreshed = time.monotonic()
        await self.pace()

    async def scan_copy(self, scan: str, add: str, zset: bool = False) -> None:
        cursor: Any = b"0"
        while True:
            cursor, items = await self.src.execute_command(
                scan, self.key, cursor, "COUNT", self.chunk
            )
            if items:
                if zset:  # ZSCAN: member, score -> ZADD score member
                    items = [x for i in range(0, len(items), 2) for x in (items[i + 1], items[i])]
                await self.write(add, self.tmp, *items)
            if cursor in (b"0", 0, "0"):
                return

    async def list_copy(self) -> None:
        length = int(await self.src.execute_command("LLEN", self.key))
        for start in range(0, length, self.chunk):
            items = await self.src.execute_command(
                "LRANGE", self.key, start, start + self.chunk - 1
            )
            if items:
                await self.write("RPUSH", self.tmp, *items)

    async def string_copy(self) -> None:
        length = int(await self.src.execute_command("STRLEN", self.key))
        for start in range(0, length, self.chunk_bytes):
            piece = await self.src.execute_command(
                "GETRANGE", self.key, start, start + self.chunk_bytes - 1
            )
            await self.write("APPEND", self.tmp, piece)

    async def stream_copy(self) -> bool:
        """Entry by entry; False when it must move whole (groups, or no entries)."""
        if await self.src.execute_command("XINFO", "GROUPS", self.key):
            return False
        start: bytes = b"-"
        copied = 0
        while True:
            entries = await self.src.execute_command(
                "XRANGE", self.key, start, "+", "COUNT", self.chunk
            )
            if not entries:
                break
            pipe = self.dst.pipeline(transaction=False)
            for entry_id, fields in entries:
                pipe.execute_command("XADD", self.tmp, entry_id, *fields)
            await pipe.execute()
            copied += len(entries)
            await self.write("PEXPIRE", self.tmp, TMP_MS)
            start = b"(" + entries[-1][0]
        if not copied:
            return False
        info = _pairs(await self.src.execute_command("XINFO", "STREAM", self.key))
        await self.dst.execute_command(
            "XSETID",
            self.tmp,
            info["last-generated-id"],
            "ENTRIESADDED",
            info["entries-added"],
            "MAXDELETEDID",
            info["max-deleted-entry-id"],
        )
        return True

    async def whole_copy(self) -> bool:
        payload = await self.src.execute_command("DUMP", self.key)
        if payload is None:
            return False
        await self.dst.execute_command("DEL", self.tmp)
        await self.write("RESTORE", self.tmp, 0, payload)
        return True

    async def copy(self, kind: str) -> bool:
        """Copy the key into the temp key; False if it vanished meanwhile."""
        await self.dst.execute_command("DEL", self.tmp)
        if kind == "hash":
            await self.scan_copy("HSCAN", "HSET")
        elif kind == "set":
            await self.scan_copy("SSCAN", "SADD")
        elif kind == "zset":
            await self.scan_copy("ZSCAN", "ZADD", zset=True)
        elif kind == "list":
            await self.list_copy()
        elif kind == "string":
            await self.string_copy()
        elif kind == "stream":
            if not await self.stream_copy():
                return await self.whole_copy()
        else:
            return await self.whole_copy()
        return True

    async def release(self) -> None:
        if await self.src.execute_command("GET", self.lock) == self.holder:
            await self.src.execute_command("DEL", self.lock)


async def move_big_key(
    src: aioredis.Redis,
    dst: aioredis.Redis,
    key: bytes,
    holder: bytes,
    *,
    chunk_items: int,
    chunk_bytes: int,
    pace: Callable[[], Awaitable[None]],
    fence: Callable[[], Awaitable[None]],
) -> BigResult:
    """Move ``key`` from ``src`` to ``dst`` (both masters, raw-reply clients) under the
    lock protocol. Raises `redis.exceptions.RedisError`, `OSError`, `TimeoutError` or
    `LockLost` on a failure: the source keeps the key, the temp key expires."""
    c = _Copy(src, dst, key, holder, chunk_items, chunk_bytes, pace)
    if await src.execute_command("SET", c.lock, holder, "NX", "PX", LOCK_MS) is None:
        return BigResult.LOCKED
    try:
        await asyncio.sleep(SETTLE_S)
        pipe = src.pipeline(transaction=False)
        pipe.execute_command("TYPE", key)
        pipe.execute_command("PEXPIRETIME", key)
        kind_raw, expire_at = await pipe.execute()
        kind = _s(kind_raw)
        if kind == "none" or not await c.copy(kind):
            await dst.execute_command("DEL", c.tmp)
            return BigResult.GONE
        tx = dst.pipeline(transaction=True)
        if int(expire_at) > 0:
            tx.execute_command("PEXPIREAT", c.tmp, int(expire_at))
        else:
            tx.execute_command("PERSIST", c.tmp)
        tx.execute_command("RENAMENX", c.tmp, key)
        replies = await tx.execute(raise_on_error=False)
        renamed = replies[-1]
        if isinstance(renamed, Exception):  # expired during the copy: tmp is gone
            await src.execute_command("DEL", key)
            return BigResult.GONE
        if int(renamed) == 0:  # the target has it already: its copy is the newer
            await dst.execute_command("DEL", c.tmp)
            await src.execute_command("DEL", key)
            return BigResult.BUSY
        await fence()
        await src.execute_command("DEL", key)
        return BigResult.MOVED
    finally:
        with contextlib.suppress(Exception):  # else the lock expires on its own in 10 s
            await c.release()
