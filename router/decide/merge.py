"""Merging the replies of a fanned-out request into the one reply a single Redis would give.

Pure functions, no I/O. Each merger takes the raw reply of every part, in
part order, and returns one raw reply. Rule shared by all: if any part is an
error, the first error (in part order) is the answer, because a client
cannot act on a half-applied multi-key command any better than on an error.

The command table names each command's merger (router.commands.table, the
``merger`` column); `MERGERS` maps those names to the functions here, and
`BUILT` lists the names whose merger is made per request (`merge_ordered`,
`scan_cursor_merge`, and INFO's in router.decide.info: they need what only the
plan knows; the diagnostics' in router.decide.diag are made per request too).
KEYS and SCAN leave out the project's own keys (`OWN_PREFIX`: a migration's locks
and the mover's temporary copies); DBSIZE may count one for a moment.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import hiredis

from slotwarden.resp import accel
from slotwarden.resp.accel import UNSURE
from slotwarden.resp.buffer import NEED_MORE
from slotwarden.resp.encode import (
    NIL,
    NULL3,
    OK,
    encode_array,
    encode_bulk,
    encode_int,
    error_reply,
)
from slotwarden.resp.replies import ReplyScanner, split_array

Merger = Callable[[list[bytes]], bytes]


def decode(raw: bytes) -> object:
    """Decode one complete raw reply (RESP2 or RESP3) into Python values (bytes, int, list, None,
    `hiredis.ReplyError`)."""
    reader = hiredis.Reader()
    reader.feed(raw)
    return reader.gets()


def first_error(parts: Sequence[bytes]) -> bytes | None:
    for raw in parts:
        if raw[:1] == b"-":
            return raw
    return None


def _unexpected(raw: bytes, want: str) -> bytes:
    return error_reply(f"ERR router expected {want} from a shard, got {raw[:60]!r}")


def merge_sum(parts: list[bytes]) -> bytes:
    """DEL, UNLINK, EXISTS, TOUCH, DBSIZE: integer replies added up."""
    err = first_error(parts)
    if err is not None:
        return err
    total = 0
    for raw in parts:
        if raw[:1] != b":":
            return _unexpected(raw, "an integer")
        total += int(raw[1:-2])
    return encode_int(total)


def merge_all_ok(parts: list[bytes]) -> bytes:
    """MSET, FLUSHALL, FLUSHDB: +OK only if every part said +OK."""
    err = first_error(parts)
    if err is not None:
        return err
    for raw in parts:
        if raw != OK:
            return _unexpected(raw, "+OK")
    return OK


def merge_ordered(
    positions: list[list[int]], total: int, resp3: bool = False, speedups: bool = True
) -> Merger:
    """MGET: part i answered the keys at ``positions[i]`` of the original
    request; rebuild the array in the original key order. Bulk values are
    decoded by hiredis and re-encoded; any other element (nil included) is
    moved as its raw bytes. ``resp3`` only picks the placeholder for slots no
    part answered (none, when the parts are well-formed). With the C speedups
    the elements are moved in C; a part C is unsure of falls back to the Python
    code, which says what is wrong."""
    nil = NULL3 if resp3 else NIL
    fast = accel.merge_ordered if speedups else None

    def merge(parts: list[bytes]) -> bytes:
        err = first_error(parts)
        if err is not None:
            return err
        if fast is not None:
            merged = fast(parts, positions, total, nil)
            if merged is not UNSURE:
                return merged  # type: ignore[no-any-return]
        out: list[bytes] = [nil] * total
        for raw, where in zip(parts, positions, strict=True):
            reader = hiredis.Reader()
            reader.feed(raw)
            values = reader.gets()
            if not isinstance(values, list) or len(values) != len(where):
                return _unexpected(raw, f"an array of {len(where)}")
            for index, value in zip(where, values, strict=True):
                if type(value) is bytes:
                    out[index] = b"$%d\r\n%b\r\n" % (len(value), value)
                else:  # nil or not a plain bulk: keep the exact element, as sent
                    raw_items = split_array(raw)
                    if raw_items is None:
                        return _unexpected(raw, "an array")
                    for i, item in zip(where, raw_items, strict=True):
                        out[i] = item
                    break
        return encode_array(out)

    return merge


# Keys of the project itself (a migration's locks, the mover's temporary copies):
# never shown by KEYS or SCAN through the router (README *Resharding*).
OWN_PREFIX = b"__slotwarden:"


def is_own_key(key: bytes) -> bool:
    return key.startswith(OWN_PREFIX)


def merge_concat(parts: list[bytes]) -> bytes:
    """KEYS: the arrays of every part, concatenated (the project's own keys, a
    migration's locks, left out: `router.decide.migrate.OWN_PREFIX`)."""
    err = first_error(parts)
    if err is not None:
        return err
    count = 0
    bodies: list[bytes] = []
    for raw in parts:
        if raw[:1] != b"*":
            return _unexpected(raw, "an array")
        if OWN_PREFIX in raw:
            items = split_array(raw)
            if items is None:
                return _unexpected(raw, "an array")
            kept = [item for item in items if not is_own_key(item[item.find(b"\r\n") + 2 :])]
            count += len(kept)
            bodies.append(b"".join(kept))
            continue
        head, _, body = raw.partition(b"\r\n")
        count += max(int(head[1:]), 0)
        bodies.append(body)
    return b"*%d\r\n" % count + b"".join(bodies)


def merge_random(parts: list[bytes]) -> bytes:
    """RANDOMKEY: a random key among the shards that have one, nil if none has."""
    err = first_error(parts)
    if err is not None:
        return err
    found = [raw for raw in parts if raw != NIL and raw != NULL3]
    return random.choice(found) if found else parts[0]


def scan_cursor_merge(shard: int, shard_count: int, shard_bits: int) -> Merger:
    """SCAN on one shard: rewrite the shard's cursor into the router's cursor.

    Router cursor = (shard cursor << shard_bits) | shard index. When a shard's
    iteration ends (cursor 0) the walk moves to the next shard; after the last
    shard the router's cursor is 0, as Redis's is at the end.
    """

    def merge(parts: list[bytes]) -> bytes:
        raw = parts[0]
        if raw[:1] == b"-":
            return raw
        value = decode(raw)
        if not (isinstance(value, list) and len(value) == 2 and isinstance(value[1], list)):
            return _unexpected(raw, "a SCAN reply")
        inner = int(value[0])
        if inner != 0:
            cursor = (inner << shard_bits) | shard
        elif shard + 1 < shard_count:
            cursor = shard + 1
        else:
            cursor = 0
        keys = encode_array([encode_bulk(k) for k in value[1] if not is_own_key(k)])
        return encode_array([encode_bulk(str(cursor).encode()), keys])

    return merge


def merge_same(parts: list[bytes]) -> bytes:
    """SCRIPT LOAD, FUNCTION LOAD: every master must answer the same (sha, library name)."""
    err = first_error(parts)
    if err is not None:
        return err
    if any(raw != parts[0] for raw in parts[1:]):
        return error_reply(
            f"ERR shards answered differently: {parts[0][:60]!r} and "
            f"{next(r for r in parts if r != parts[0])[:60]!r}"
        )
    return parts[0]


def merge_first(parts: list[bytes]) -> bytes:
    """FUNCTION LIST: every master holds the same libraries; shard 0 answers for all."""
    err = first_error(parts)
    return err if err is not None else parts[0]


def merge_any_ok(parts: list[bytes]) -> bytes:
    """SCRIPT KILL, FUNCTION KILL: OK if one master had something to kill, else the first
    error (``NOTBUSY No scripts in execution right now.``)."""
    for raw in parts:
        if raw == OK:
            return OK
    err = first_error(parts)
    return err if err is not None else _unexpected(parts[0], "+OK")


def merge_and(parts: list[bytes]) -> bytes:
    """SCRIPT EXISTS: a script exists only if every master has it (element-wise AND)."""
    err = first_error(parts)
    if err is not None:
        return err
    result: list[int] | None = None
    for raw in parts:
        value = decode(raw)
        if not isinstance(value, list) or not all(type(v) is int for v in value):
            return _unexpected(raw, "an array of integers")
        if result is None:
            result = list(value)
        elif len(value) != len(result):
            return _unexpected(raw, f"an array of {len(result)}")
        else:
            result = [a & b for a, b in zip(result, value, strict=True)]
    return encode_array([encode_int(v) for v in result or []])


def merge_union(parts: list[bytes]) -> bytes:
    """PUBSUB CHANNELS / SHARDCHANNELS: every master's names, each once."""
    err = first_error(parts)
    if err is not None:
        return err
    seen: dict[bytes, None] = {}
    for raw in parts:
        value = decode(raw)
        if not isinstance(value, list):
            return _unexpected(raw, "an array")
        for name in value:
            seen[name if isinstance(name, bytes) else str(name).encode()] = None
    return encode_array([encode_bulk(name) for name in seen])


def merge_numsub(parts: list[bytes]) -> bytes:
    """PUBSUB NUMSUB / SHARDNUMSUB ch ...: ``[ch, n, ...]`` with n summed over masters."""
    err = first_error(parts)
    if err is not None:
        return err
    names: list[bytes] = []
    counts: list[int] = []
    for raw in parts:
        value = decode(raw)
        if isinstance(value, dict):  # RESP3 map
            value = [x for pair in value.items() for x in pair]
        if not isinstance(value, list) or len(value) % 2:
            return _unexpected(raw, "a channel/count array")
        if not names:
            names = list(value[::2])
            counts = [0] * len(names)
        if list(value[::2]) != names:
            return _unexpected(raw, "the same channels from every shard")
        for i, n in enumerate(value[1::2]):
            counts[i] += int(n)
    items: list[bytes] = []
    for name, n in zip(names, counts, strict=True):
        items += (encode_bulk(name), encode_int(n))
    return encode_array(items)


def merge_max(parts: list[bytes]) -> bytes:
    """PUBSUB NUMPAT: the largest count (patterns are subscribed on every master)."""
    err = first_error(parts)
    if err is not None:
        return err
    for raw in parts:
        if raw[:1] != b":":
            return _unexpected(raw, "an integer")
    return encode_int(max(int(raw[1:-2]) for raw in parts))


def merge_min(parts: list[bytes]) -> bytes:
    """WAIT over every master: the smallest count (each must have that many replicas in
    sync); one part is passed as it is; any part that is not an integer is the answer."""
    if len(parts) == 1:
        return parts[0]
    errors = [p for p in parts if p[:1] != b":"]
    return errors[0] if errors else b":%d\r\n" % min(int(p[1:-2]) for p in parts)


# The mergers the command table names, by name.
# CONFIG GET through the router never shows these: the shards' passwords and TLS
# keys (with them a client could talk to the shards directly, past every refusal)
# and where the shards keep files. A pattern (``*``, ``*pass*``) matches them on the
# server; the filter drops them from the reply, as if they did not exist.
CONFIG_HIDDEN = frozenset(
    {
        "requirepass", "masterauth", "masteruser", "aclfile", "dir", "dbfilename",
        "logfile", "pidfile", "unixsocket", "unixsocketperm", "appendfilename",
        "appenddirname", "cluster-config-file", "tls-cert-file", "tls-key-file",
        "tls-key-file-pass", "tls-client-cert-file", "tls-client-key-file",
        "tls-client-key-file-pass", "tls-ca-cert-file", "tls-ca-cert-dir", "tls-dh-params-file",
    }
)  # fmt: skip


def merge_config_get(parts: list[bytes]) -> bytes:
    """CONFIG GET (one shard's reply): its name/value pairs less `CONFIG_HIDDEN`.
    RESP2 answers a flat array, RESP3 a map; both keep their type."""
    raw = parts[0]
    if raw[:1] not in (b"*", b"%"):
        return raw  # an error, or something this filter does not know: as it came
    nl = raw.find(b"\r\n")
    count = int(raw[1:nl])
    items = count * 2 if raw[:1] == b"%" else count
    scanner = ReplyScanner(speedups=False)
    scanner.feed(raw[nl + 2 :])
    elements = [scanner.next_reply() for _ in range(items)]
    if any(e is NEED_MORE for e in elements) or items % 2:
        return _unexpected(raw, "CONFIG GET name/value pairs")
    kept: list[bytes] = []
    for name, value in zip(elements[0::2], elements[1::2], strict=True):
        assert isinstance(name, bytes) and isinstance(value, bytes)
        text = name[name.find(b"\r\n") + 2 : -2] if name[:1] == b"$" else name[1:-2]
        if text.decode("latin-1").lower() not in CONFIG_HIDDEN:
            kept += (name, value)
    if len(kept) == items:
        return raw
    size = len(kept) // 2 if raw[:1] == b"%" else len(kept)
    return raw[:1] + b"%d\r\n" % size + b"".join(kept)


MERGERS: dict[str, Merger] = {
    "sum": merge_sum,  # DEL, UNLINK, EXISTS, TOUCH, DBSIZE
    "all-ok": merge_all_ok,  # MSET, FLUSHALL, FLUSHDB, SCRIPT FLUSH ...
    "concat": merge_concat,  # KEYS
    "random": merge_random,  # RANDOMKEY
    "same": merge_same,  # SCRIPT LOAD, FUNCTION LOAD
    "first": merge_first,  # FUNCTION LIST
    "any-ok": merge_any_ok,  # SCRIPT KILL, FUNCTION KILL
    "and": merge_and,  # SCRIPT EXISTS
    "union": merge_union,  # PUBSUB CHANNELS, SHARDCHANNELS
    "numsub": merge_numsub,  # PUBSUB NUMSUB, SHARDNUMSUB
    "max": merge_max,  # PUBSUB NUMPAT
    "min": merge_min,  # WAIT
    "config-get": merge_config_get,  # CONFIG GET (one shard, secrets dropped)
}
# Named by the table, made per request by the plan: MGET (where each key went),
# INFO (router.decide.info), SCAN (the shard being walked).
BUILT = frozenset({"ordered", "info", "scan"})
