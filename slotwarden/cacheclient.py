"""A small, honest client-side cache driven by Redis's CLIENT TRACKING (sync, one thread).

`CacheClient` talks to a router or a redis-server over plain sockets with the
project's RESP framing (`slotwarden.resp.replies.ReplyScanner`; hiredis decodes
each framed reply). It keeps what it read in a dict and drops an entry when the
server says the key changed. It is what the tracking tests and `bench/tracking.py`
drive; it is also a readable reference for an app's own cache.

Modes (``mode=``):

- ``"resp3"``: one connection, ``HELLO 3``, ``CLIENT TRACKING ON [BCAST PREFIX p …]
  [OPTIN] [NOLOOP]``. Invalidations arrive in band as pushes (``>2 invalidate
  [k …]``, a null = drop everything).
- ``"redirect"``: RESP2. A second connection learns its ``CLIENT ID`` and
  ``SUBSCRIBE``s to ``__redis__:invalidate``; the data connection sends
  ``CLIENT TRACKING ON REDIRECT <id> …``. Invalidations arrive as pub/sub
  messages on the second connection (``$-1`` payload = drop everything).
- ``"off"``: no tracking, no cache: every `get` reads through (the bench's baseline).

The rules, and why they are safe:

- Pending invalidations are applied before every cache lookup (a non-blocking read
  of whatever has arrived) and whenever data arrives while waiting for a reply.
- A miss stores the reply, then applies every invalidation that arrived with or
  before it. On one connection (``resp3``) the server orders a push for a write
  after our read behind the read's reply, so a push read before the reply is an
  older change; on two (``redirect``) the invalidation connection is read only
  after the reply is stored, so a change after our read can only remove the
  entry, never be overtaken by it. Either way the worst case is an entry dropped
  that was still good.
- With ``bcast`` and prefixes only keys under a prefix are cached (nothing else
  is ever invalidated); with ``optin`` each read is preceded by ``CLIENT CACHING
  YES`` in the same write.
- A lost connection (either one) clears the whole cache, as redis-py's cache
  does, and raises `ConnectionError`; the next call reconnects and tracks anew.
  A ``tracking-redir-broken`` push does the same.
- Writes through `set` / `delete` drop the keys locally first (with ``noloop``
  the server does not tell the writer about its own writes).
- Every socket operation has a timeout (``timeout``): a call never hangs.

Counters: ``hits``, ``misses``, ``invalidations`` (keys invalidated by the server,
whether cached or not), ``flushes`` (null invalidations, ``tracking-redir-broken``),
``losses`` (connections lost or timed out: the cache cleared too). Arrival
times (`time.monotonic`) of the latest invalidation of each key are in
``invalidated_at`` and of flushes in ``flushed_at``, for the bench's staleness
window; ``on_invalidate(key | None, t)`` is called for each too.

Imports: `slotwarden.resp` (framing) and hiredis; never `router` or `sentinel`.
"""

from __future__ import annotations

import select
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Literal

import hiredis

from slotwarden.resp.buffer import NEED_MORE
from slotwarden.resp.encode import encode_command
from slotwarden.resp.replies import ReplyScanner

Mode = Literal["resp3", "redirect", "off"]
INVALIDATE_CHANNEL = b"__redis__:invalidate"
Arg = bytes | str | int | float


class ReplyError(Exception):
    """An error reply (``-ERR …``) to a command."""


def _b(value: Arg) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode()


def _decode(raw: bytes) -> object:
    reader = hiredis.Reader()
    reader.feed(raw)
    return reader.gets()


class _Conn:
    """One socket with a reply framer; every read is bounded by ``timeout``."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.scanner = ReplyScanner()

    def send(self, *commands: Sequence[Arg]) -> None:
        self.sock.sendall(b"".join(encode_command([_b(a) for a in c]) for c in commands))

    def framed(self) -> list[bytes]:
        out: list[bytes] = []
        while True:
            raw = self.scanner.next_reply()
            if raw is NEED_MORE:
                return out
            out.append(raw)  # type: ignore[arg-type]

    def fill(self, wait: float | None) -> bool:
        """Read what the socket has: block up to ``wait`` seconds (None: ``timeout``,
        then `TimeoutError`; 0: do not block). False if nothing came."""
        if wait is not None:
            ready, _, _ = select.select([self.sock], [], [], wait)
            if not ready:
                return False
        data = self.sock.recv(1 << 16)  # the socket's own timeout bounds this
        if not data:
            raise ConnectionError("connection closed by the server")
        self.scanner.feed(data)
        return True

    def close(self) -> None:
        self.sock.close()


class CacheClient:
    """A caching client (see the module docstring). Not thread-safe: one per thread."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 6379,
        *,
        mode: Mode = "resp3",
        bcast: bool = False,
        prefixes: Iterable[Arg] = (),
        optin: bool = False,
        noloop: bool = False,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 5.0,
        on_invalidate: Callable[[bytes | None, float], None] | None = None,
    ) -> None:
        self.host, self.port, self.mode = host, port, mode
        self.bcast, self.prefixes = bcast, [_b(p) for p in prefixes]
        self.optin, self.noloop = optin, noloop
        self.username, self.password = username, password
        self.timeout = timeout
        self.on_invalidate = on_invalidate
        self.cache: dict[bytes, object] = {}
        self.hits = self.misses = self.invalidations = self.flushes = self.losses = 0
        self.invalidated_at: dict[bytes, float] = {}
        self.flushed_at: list[float] = []
        self._data: _Conn | None = None
        self._inval: _Conn | None = None  # redirect mode's subscriber
        self._pending: list[bytes] = []  # framed non-push replies of the data connection
        self._inbox: deque[bytes] = deque()  # framed, not yet sorted (pushes behind a reply)

    # -- connections -----------------------------------------------------------------

    def connect(self) -> None:
        """Open the connection(s) and turn tracking on (done by the first call too)."""
        if self._data is not None:
            return
        try:
            self._open()
        except BaseException:
            self._drop()
            raise

    def _auth(self) -> list[Arg]:
        if self.password is None:
            return []
        return ["AUTH", self.username or "default", self.password]

    def _tracking_args(self) -> list[Arg]:
        args: list[Arg] = ["CLIENT", "TRACKING", "ON"]
        if self.bcast:
            args.append("BCAST")
            for p in self.prefixes:
                args += ["PREFIX", p]
        if self.optin:
            args.append("OPTIN")
        if self.noloop:
            args.append("NOLOOP")
        return args

    def _open(self) -> None:
        self._data = _Conn(self.host, self.port, self.timeout)
        if self.mode == "resp3":
            self._check(self._call(["HELLO", "3", *self._auth()], self._tracking_args()))
            return
        if self.password is not None:
            self._check(self._call(self._auth()))
        if self.mode == "off":
            return
        inval = self._inval = _Conn(self.host, self.port, self.timeout)
        if self.password is not None:
            inval.send(self._auth())
        inval.send(["CLIENT", "ID"], ["SUBSCRIBE", INVALIDATE_CHANNEL])
        replies: list[object] = []
        want = 3 if self.password is not None else 2
        while len(replies) < want:
            if not self._read_some(inval, replies):
                inval.fill(None)
        self._check(replies)
        cid = replies[-2]
        if not isinstance(cid, int):
            raise ReplyError(f"CLIENT ID answered {cid!r}")
        args = self._tracking_args()
        self._check(self._call([*args[:3], "REDIRECT", cid, *args[3:]]))

    @staticmethod
    def _read_some(conn: _Conn, into: list[object]) -> bool:
        got = False
        for raw in conn.framed():
            into.append(_decode(raw))
            got = True
        return got

    @staticmethod
    def _check(replies: list[object]) -> None:
        for value in replies:
            if isinstance(value, hiredis.ReplyError):
                raise ReplyError(str(value))

    def _drop(self) -> None:
        for conn in (self._data, self._inval):
            if conn is not None:
                conn.close()
        self._data = self._inval = None
        self._pending.clear()
        self._inbox.clear()

    def _lost(self, why: BaseException) -> ConnectionError:
        self._drop()
        self.cache.clear()
        self.losses += 1
        return ConnectionError(f"{self.host}:{self.port}: {why}; the local cache was cleared")

    def close(self) -> None:
        self._drop()
        self.cache.clear()

    def __enter__(self) -> CacheClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- invalidations ------------------------------------------------------------------

    def _flush(self) -> None:
        now = time.monotonic()
        self.cache.clear()
        self.flushes += 1
        self.flushed_at.append(now)
        if self.on_invalidate is not None:
            self.on_invalidate(None, now)

    def _invalidate(self, keys: object) -> None:
        if keys is None:
            self._flush()
            return
        now = time.monotonic()
        for k in keys if isinstance(keys, list) else []:
            if isinstance(k, bytes):
                self.cache.pop(k, None)
                self.invalidations += 1
                self.invalidated_at[k] = now
                if self.on_invalidate is not None:
                    self.on_invalidate(k, now)

    def _take_data(self, conn: _Conn, want: int = 0) -> None:
        """Sort what the data connection framed, in order: pushes applied, replies queued;
        with ``want``, stop once that many replies are queued (a push behind them is newer
        than they are: it must apply after the caller stored them)."""
        inbox = self._inbox
        inbox.extend(conn.framed())
        while inbox and (not want or len(self._pending) < want):
            raw = inbox.popleft()
            if raw[:1] != b">":
                self._pending.append(raw)
                continue
            push = _decode(raw)
            if not isinstance(push, list) or not push:
                continue
            if push[0] == b"invalidate" and len(push) == 2:
                self._invalidate(push[1])
            elif push[0] == b"tracking-redir-broken":
                self._flush()

    def _take_inval(self, conn: _Conn) -> None:
        for raw in conn.framed():
            msg = _decode(raw)
            if (
                isinstance(msg, list)
                and len(msg) == 3
                and msg[0] == b"message"
                and msg[1] == INVALIDATE_CHANNEL
            ):
                self._invalidate(msg[2])

    def poll(self, wait: float = 0.0) -> int:
        """Apply the invalidations that have arrived, waiting up to ``wait`` seconds for
        the first one if none has. Returns how many keys/flushes were applied."""
        self.connect()
        before = self.invalidations + self.flushes
        deadline = time.monotonic() + wait
        if self._inbox and self._data is not None:
            self._take_data(self._data)
        try:
            while True:
                conns = [c for c in (self._data, self._inval) if c is not None]
                if self.invalidations + self.flushes > before:
                    deadline = 0.0  # one has come: take what else is there, then return
                left = max(0.0, deadline - time.monotonic())
                ready, _, _ = select.select([c.sock for c in conns], [], [], left)
                if not ready:
                    break
                for c in conns:
                    if c.sock in ready:
                        c.fill(0)
                        if c is self._data:
                            self._take_data(c)
                        else:
                            self._take_inval(c)
        except OSError as exc:
            raise self._lost(exc) from exc
        return self.invalidations + self.flushes - before

    # -- commands -----------------------------------------------------------------------

    def _call(self, *commands: Sequence[Arg]) -> list[object]:
        """Send ``commands`` in one write and return their decoded replies (errors as
        `hiredis.ReplyError` values), applying every push that arrives meanwhile."""
        conn = self._data
        assert conn is not None
        try:
            conn.send(*commands)
            while len(self._pending) < len(commands):
                self._take_data(conn, len(commands))
                if len(self._pending) < len(commands):
                    conn.fill(None)
        except OSError as exc:
            raise self._lost(exc) from exc
        raws, self._pending = self._pending[: len(commands)], self._pending[len(commands) :]
        return [_decode(r) for r in raws]

    def execute(self, *args: Arg) -> object:
        """Send one command; its decoded reply (`ReplyError` raised for an error reply)."""
        self.connect()
        (value,) = self._call(args)
        if isinstance(value, hiredis.ReplyError):
            raise ReplyError(str(value))
        return value

    def cacheable(self, key: bytes) -> bool:
        if self.mode == "off":
            return False
        if self.bcast and self.prefixes:
            return any(key.startswith(p) for p in self.prefixes)
        return True

    def get(self, key: Arg) -> object:
        """GET ``key``: from the local cache when it holds it, else from the server."""
        k = _b(key)
        self.poll(0)
        if k in self.cache:
            self.hits += 1
            return self.cache[k]
        self.misses += 1
        if self.optin and self.cacheable(k):
            caching, value = self._call(["CLIENT", "CACHING", "YES"], ["GET", k])
            if isinstance(caching, hiredis.ReplyError):
                raise ReplyError(str(caching))
        else:
            (value,) = self._call(["GET", k])
        if isinstance(value, hiredis.ReplyError):
            raise ReplyError(str(value))
        if self.cacheable(k):
            self.cache[k] = value
            self.poll(0)  # anything that came with the reply applies after storing it
        return value

    def set(self, key: Arg, value: Arg, *options: Arg) -> object:
        k = _b(key)
        self.cache.pop(k, None)
        return self.execute("SET", k, value, *options)

    def delete(self, *keys: Arg) -> object:
        for k in keys:
            self.cache.pop(_b(k), None)
        return self.execute("DEL", *keys)
