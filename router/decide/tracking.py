"""Client-side caching (CLIENT TRACKING) in the router: the pure part.

Pure, no I/O. The router keeps, like Redis's tracking table, which of its
clients read which keys, and fans out the invalidations its per-shard BCAST
tracking connections (router.wire.tracking) receive:

    CLIENT TRACKING ON ... ─► parse_tracking ─► ClientTracking (per client)
    a read sent (keys, not spec.write) ─► Table.add(shard, key, client)   [if the shard is live]
    a write by a NOLOOP client ─────────► Table.forget_writer(key, client)
    shard s: invalidate [k...] ─────────► Table.invalidate(s, keys) ─► {client: [keys]}
    shard s: null / lost / topology ────► Table.flush(s) ─► {clients}  (+ every BCAST client)
    table over max_keys ────────────────► the oldest key evicted ─► {client: [key]}

Rules (Redis 7.0.15's, see tracking.c and networking.c):
- A client in default mode is remembered for the keys of its reads; OPTIN: only
  reads right after ``CLIENT CACHING YES``; OPTOUT: not reads right after
  ``CLIENT CACHING NO`` (`ClientTracking.tracks_reads`). The CACHING flag lasts
  for the next command (all of a MULTI ... EXEC), CLIENT commands excepted.
- An entry is forgotten when its key is invalidated (every client of it is told
  once) or evicted (the table is bounded by ``router.tracking_table_max_keys``,
  0 = no bound; the oldest key goes first, its clients told, as Redis does when
  its tracking-table-max-keys is reached).
- BCAST clients are not in the table: they get every key of every shard
  invalidation that matches one of their prefixes (none: every key).
- Client ids of clients gone or no longer tracking are skipped at delivery
  (lazily, as Redis does), not searched for when they leave.

Encodings (`invalidate_push`, `invalidate_message`): a RESP3 push
``>2 invalidate [keys]`` (null: ``_``), or for a RESP2 REDIRECT target
subscribed to anything, the pub/sub message ``message __redis__:invalidate [keys]``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from slotwarden.resp.encode import OK, encode_bulk, encode_int, error_reply

SYNTAX = error_reply("ERR syntax error")
TRACKING_CHANNEL = b"__redis__:invalidate"
# CLIENT subcommands answered by the router's tracker (router.wire.tracking)
TRACKING_COMMANDS = frozenset(
    {"client|tracking", "client|caching", "client|getredir", "client|trackinginfo"}
)
REDIRECT_MISSING = error_reply("ERR The client ID you want redirect to does not exist")
CACHING_NOT_TRACKING = error_reply(
    "ERR CLIENT CACHING can be called only when the client is in tracking mode with "
    "OPTIN or OPTOUT mode enabled"
)


@dataclass(slots=True)
class ClientTracking:
    """One client's tracking options (Redis's CLIENT_TRACKING_* flags)."""

    bcast: bool = False
    optin: bool = False
    optout: bool = False
    noloop: bool = False
    caching: bool = False  # CLIENT CACHING YES/NO given, for the next command
    redirect: int = 0  # the client id invalidations go to (0: this client)
    broken: bool = False  # the redirect target is gone (TRACKINGINFO broken_redirect)
    prefixes: list[bytes] = field(default_factory=list)  # BCAST: none = every key

    def tracks_reads(self) -> bool:
        """Whether this client's reads are remembered now (default mode, OPTIN/OPTOUT)."""
        if self.bcast:
            return False
        if self.optin:
            return self.caching
        if self.optout:
            return not self.caching
        return True

    def matches(self, key: bytes) -> bool:
        """BCAST: whether ``key`` is one of this client's prefixes (none: every key)."""
        return not self.prefixes or any(key.startswith(p) for p in self.prefixes)


@dataclass(frozen=True, slots=True)
class TrackingOn:
    """``CLIENT TRACKING ON`` with its options, checked."""

    redirect: int
    bcast: bool
    optin: bool
    optout: bool
    noloop: bool
    prefixes: tuple[bytes, ...]


def _overlap(a: bytes, b: bytes) -> bool:
    return a.startswith(b) or b.startswith(a)


def parse_tracking(
    args: list[bytes], now: ClientTracking | None, exists: Callable[[int], bool]
) -> TrackingOn | bytes | None:
    """``CLIENT TRACKING ON|OFF [options]``: `TrackingOn`, None for OFF, or Redis's error.
    ``now``: the client's current tracking (None: off); ``exists``: a client id of
    this router is connected."""
    redirect = 0
    bcast = optin = optout = noloop = False
    prefixes: list[bytes] = []
    j = 3
    while j < len(args):
        opt = args[j].lower()
        more = len(args) - 1 - j
        if opt == b"redirect" and more:
            j += 1
            if redirect != 0:
                return error_reply("ERR A client can only redirect to a single other client")
            try:
                redirect = int(args[j])
                if not -(2**63) <= redirect < 2**63 or args[j] != str(redirect).encode():
                    raise ValueError
            except ValueError:
                return error_reply("ERR value is not an integer or out of range")
            if not exists(redirect):
                return REDIRECT_MISSING
        elif opt == b"bcast":
            bcast = True
        elif opt == b"optin":
            optin = True
        elif opt == b"optout":
            optout = True
        elif opt == b"noloop":
            noloop = True
        elif opt == b"prefix" and more:
            j += 1
            prefixes.append(args[j])
        else:
            return SYNTAX
        j += 1
    mode = args[2].lower()
    if mode == b"off":
        return None
    if mode != b"on":
        return SYNTAX
    if not bcast and prefixes:
        return error_reply("ERR PREFIX option requires BCAST mode to be enabled")
    if now is not None and now.bcast != bcast:
        return error_reply(
            "ERR You can't switch BCAST mode on/off before disabling tracking for this "
            "client, and then re-enabling it with a different mode."
        )
    if bcast and (optin or optout):
        return error_reply("ERR OPTIN and OPTOUT are not compatible with BCAST")
    if optin and optout:
        return error_reply("ERR You can't specify both OPTIN mode and OPTOUT mode")
    if now is not None and ((optin and now.optout) or (optout and now.optin)):
        return error_reply(
            "ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this "
            "client, and then re-enabling it with a different mode."
        )
    if bcast:
        for i, p in enumerate(prefixes):
            for old in now.prefixes if now is not None else ():
                if _overlap(p, old):
                    return error_reply(
                        f"ERR Prefix '{_text(p)}' overlaps with an existing prefix "
                        f"'{_text(old)}'. Prefixes for a single client must not overlap."
                    )
            for other in prefixes[i + 1 :]:
                if _overlap(p, other):
                    return error_reply(
                        f"ERR Prefix '{_text(p)}' overlaps with another provided prefix "
                        f"'{_text(other)}'. Prefixes for a single client must not overlap."
                    )
    return TrackingOn(redirect, bcast, optin, optout, noloop, tuple(prefixes))


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def enable(now: ClientTracking | None, on: TrackingOn) -> ClientTracking:
    """The client's tracking after ``on`` (Redis's enableTracking: the flags are set
    anew, BCAST prefixes accumulate; no prefix in BCAST = every key)."""
    prefixes = list(now.prefixes) if now is not None else []
    if on.bcast:
        # no PREFIX at all: the empty prefix (every key), as Redis
        for p in on.prefixes or (b"",):
            if p not in prefixes:
                prefixes.append(p)
        prefixes.sort()
    caching = now.caching if now is not None else False
    return ClientTracking(
        bcast=on.bcast,
        optin=on.optin,
        optout=on.optout,
        noloop=on.noloop,
        caching=caching,
        redirect=on.redirect,
        prefixes=prefixes if on.bcast else [],
    )


def caching(now: ClientTracking | None, args: list[bytes]) -> bytes:
    """``CLIENT CACHING YES|NO``: +OK (the flag set on ``now``) or Redis's error."""
    if now is None:
        return CACHING_NOT_TRACKING
    opt = args[2].lower()
    if opt == b"yes":
        if not now.optin:
            return error_reply(
                "ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode."
            )
    elif opt == b"no":
        if not now.optout:
            return error_reply(
                "ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode."
            )
    else:
        return SYNTAX
    now.caching = True
    return OK


def getredir(now: ClientTracking | None) -> bytes:
    """``CLIENT GETREDIR``: the redirect id, 0 without, -1 when tracking is off."""
    return encode_int(now.redirect if now is not None else -1)


def trackinginfo(now: ClientTracking | None, resp3: bool) -> bytes:
    """``CLIENT TRACKINGINFO``: flags, redirect, prefixes (a map in RESP3, else an array)."""
    flags = [b"on" if now is not None else b"off"]
    if now is not None:
        if now.bcast:
            flags.append(b"bcast")
        if now.optin:
            flags.append(b"optin")
            if now.caching:
                flags.append(b"caching-yes")
        if now.optout:
            flags.append(b"optout")
            if now.caching:
                flags.append(b"caching-no")
        if now.noloop:
            flags.append(b"noloop")
        if now.broken:
            flags.append(b"broken_redirect")
    prefixes = now.prefixes if now is not None else []
    head = b"%3\r\n" if resp3 else b"*6\r\n"
    set_head = b"~" if resp3 else b"*"
    return (
        head
        + encode_bulk(b"flags")
        + set_head
        + b"%d\r\n" % len(flags)
        + b"".join(encode_bulk(f) for f in flags)
        + encode_bulk(b"redirect")
        + getredir(now)
        + encode_bulk(b"prefixes")
        + b"*%d\r\n" % len(prefixes)
        + b"".join(encode_bulk(p) for p in prefixes)
    )


def _keys(keys: list[bytes] | None, resp3: bool) -> bytes:
    if keys is None:
        return b"_\r\n" if resp3 else b"$-1\r\n"  # Redis's shared.null[resp]
    return b"*%d\r\n" % len(keys) + b"".join(encode_bulk(k) for k in keys)


def invalidate_push(keys: list[bytes] | None, resp3: bool = True) -> bytes:
    """The RESP3 push ``invalidate [keys]`` (None: the null of a flush, in the
    protocol of the tracking client, ``resp3``)."""
    return b">2\r\n$10\r\ninvalidate\r\n" + _keys(keys, resp3)


def invalidate_message(keys: list[bytes] | None, resp3: bool = False) -> bytes:
    """The RESP2 pub/sub message on ``__redis__:invalidate`` (a REDIRECT target)."""
    return b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n" + _keys(keys, resp3)


def redir_broken(target: int) -> bytes:
    """The RESP3 push a client gets when its REDIRECT target is gone."""
    return b">2\r\n$21\r\ntracking-redir-broken\r\n" + encode_int(target)


class Table:
    """Which client ids read which keys, per shard, bounded (see the module docstring).

    ``keys[s]``: key -> client ids, for the keys of shard index ``s``; ``order``:
    every key -> its shard, oldest first (the eviction order).
    """

    __slots__ = ("evictions", "items", "keys", "max_keys", "order")

    def __init__(self, max_keys: int) -> None:
        self.max_keys = max_keys  # 0: no bound
        self.keys: dict[int, dict[bytes, set[int]]] = {}
        self.order: dict[bytes, int] = {}
        self.items = 0  # (key, client) pairs
        self.evictions = 0  # keys evicted because the table was full

    def __len__(self) -> int:
        return len(self.order)

    def add(self, shard: int, key: bytes, client: int) -> dict[int, list[bytes]]:
        """Remember that ``client`` read ``key`` of ``shard``; what to tell whom if the
        table was full (the evicted keys' clients)."""
        where = self.order.get(key)
        if where is not None and where != shard:  # the key moved shards meanwhile
            self._drop(key)
            where = None
        if where is None:
            self.order[key] = shard
        ids = self.keys.setdefault(shard, {}).setdefault(key, set())
        if client not in ids:
            ids.add(client)
            self.items += 1
        out: dict[int, list[bytes]] = {}
        while self.max_keys and len(self.order) > self.max_keys:
            old = next(iter(self.order))
            self.evictions += 1
            for c in self._drop(old):
                out.setdefault(c, []).append(old)
        return out

    def _drop(self, key: bytes) -> set[int]:
        shard = self.order.pop(key)
        ids = self.keys[shard].pop(key, set())
        self.items -= len(ids)
        return ids

    def forget_writer(self, key: bytes, client: int) -> None:
        """NOLOOP: a write by ``client`` spares it the invalidation of ``key``."""
        shard = self.order.get(key)
        if shard is None:
            return
        ids = self.keys[shard].get(key)
        if ids is not None and client in ids:
            ids.discard(client)
            self.items -= 1

    def invalidate(self, shard: int, keys: Iterable[bytes]) -> dict[int, list[bytes]]:
        """Shard ``shard`` said ``keys`` changed: each client that read one is told (its
        keys together) and the keys are forgotten."""
        out: dict[int, list[bytes]] = {}
        table = self.keys.get(shard)
        if not table:
            return out
        for key in keys:
            ids = table.pop(key, None)
            if ids is None:
                continue
            del self.order[key]
            self.items -= len(ids)
            for c in ids:
                out.setdefault(c, []).append(key)
        return out

    def flush(self, shard: int) -> set[int]:
        """Shard ``shard``'s tracking state is gone: the clients that read any of its
        keys (each is sent a null), its keys forgotten."""
        table = self.keys.pop(shard, None)
        if not table:
            return set()
        out: set[int] = set()
        for key, ids in table.items():
            del self.order[key]
            self.items -= len(ids)
            out |= ids
        return out

    def shards(self) -> list[int]:
        return [s for s, t in self.keys.items() if t]


def bcast_keys(tracking: ClientTracking, keys: list[bytes]) -> list[bytes]:
    """The keys of ``keys`` a BCAST client is told about (its prefixes)."""
    if not tracking.prefixes or b"" in tracking.prefixes:
        return keys
    return [k for k in keys if tracking.matches(k)]
