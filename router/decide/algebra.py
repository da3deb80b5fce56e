"""Multi-key commands whose keys span shards, run by the router on one shard over copies.

Pure, no I/O (the fetches and the transaction are sent by `router.wire.gather`).
With ``router.cross_shard: compute``, a command whose row names one of the
`COMPUTED` mergers (SUNION, SINTERCARD, ZUNIONSTORE, PFCOUNT, LCS, BITOP,
SORT ... STORE ..., GEORADIUS ... STORE|STOREDIST ...) and whose keys span
shards is not refused with CROSSSLOT:

1. the *anchor* shard is chosen: the destination's shard for the ``*STORE``
   forms (`STORE_FIRST`: the first key is the destination; `SORT_STORE`: the
   key after STORE; `GEO_STORE`: the key after the later of STORE and
   STOREDIST, the one GEORADIUS/GEORADIUSBYMEMBER writes), else the shard
   holding the most of the keys (ties: the first key's);
2. every *foreign* key (one on another shard) is measured (``MEMORY USAGE key``,
   an estimate) and then copied (``DUMP``) from its shard; more than
   ``router.max_cross_shard_bytes`` of inputs (estimated before the copy, exact
   after it) -> `too_large` (CROSSSLOT with a hint), before anything is written;
3. on the anchor, one transaction: ``MULTI``, ``RESTORE tmp TTL payload`` for
   each foreign key that exists, the client's command with each foreign key
   renamed to its copy, ``DEL`` of the copies, ``EXEC``. Redis itself computes
   the reply, so every option, error (WRONGTYPE, NaN, syntax), float format and
   RESP2/RESP3 encoding is exactly a single Redis's; a missing key stays missing
   (no copy). The copies exist only inside that one EXEC (no other client can
   see them; SCAN and KEYS never return them) and carry a TTL of `TEMP_TTL_MS`
   besides. Their names: ``__slotwarden:xs:{TAG}:TOKEN:N``, TAG a hash tag of the
   anchor key's slot.

What is not computed: SORT with a BY or GET pattern that reads other keys
(one with a ``*``), and the moves between shards (RENAME, COPY, SMOVE, LMOVE,
RPOPLPUSH, MSETNX: no row names a computed merger), which stay CROSSSLOT.
"""

from __future__ import annotations

from dataclasses import dataclass

from router.commands import spec as cmds
from router.commands import table
from router.commands.spec import CommandSpec, KeySpecError
from router.errors import CROSSSLOT
from slotwarden.resp.accel import key_slot
from slotwarden.resp.encode import encode_command, error_reply
from slotwarden.resp.replies import split_array

READ = table.READ  # read-only: anchor = the shard holding most of the keys
STORE_FIRST = table.STORE  # *STORE, PFMERGE, BITOP: the first key is the destination
SORT_STORE = table.SORTSTORE  # SORT ... STORE dst: the key after STORE is the destination
GEO_STORE = table.GEOSTORE  # GEORADIUS* ... STORE|STOREDIST dst: the last one given
COMPUTED = frozenset({READ, STORE_FIRST, SORT_STORE, GEO_STORE})

TEMP_PREFIX = b"__slotwarden:xs:"
TEMP_TTL_MS = 60000  # the copies are deleted in the same EXEC; this only backs that up

MULTI = encode_command([b"MULTI"])
EXEC = encode_command([b"EXEC"])


@dataclass(frozen=True, slots=True)
class CrossShard:
    """How one command spanning shards runs: on ``anchor``, over copies of ``fetch``."""

    anchor: int  # the shard the command runs on
    fetch: list[tuple[int, bytes]]  # (shard, key) of each distinct foreign key
    temps: list[bytes]  # the copy's name of each fetched key, same order
    args: list[bytes]  # the command, foreign keys renamed to their copies


def too_large(total: int, limit: int) -> bytes:
    return error_reply(
        "CROSSSLOT Keys in request don't hash to the same slot (their cross-shard inputs, "
        f"{total} bytes or more, exceed router.max_cross_shard_bytes {limit})"
    )


def _sort_reads_other_keys(args: list[bytes]) -> bool:
    """SORT's BY/GET patterns with a ``*`` read keys named by the elements (not computed)."""
    i, n = 2, len(args)
    while i < n:
        word = args[i].lower()
        if word in (b"by", b"get"):
            if i + 1 < n and b"*" in args[i + 1]:
                return True
            i += 2
        elif word == b"limit":
            i += 3
        elif word == b"store":
            i += 2
        else:
            i += 1
    return False


_TAGS: list[bytes] = []


def slot_tag(slot: int) -> bytes:
    """The shortest decimal number whose hash slot is ``slot`` (every slot's found once,
    on first use: about 160 000 CRC16s)."""
    if not _TAGS:
        tags: list[bytes | None] = [None] * 16384
        missing, i = 16384, 0
        while missing:
            tag = str(i).encode()
            slot_i = key_slot(tag)
            if tags[slot_i] is None:
                tags[slot_i] = tag
                missing -= 1
            i += 1
        _TAGS.extend(t for t in tags if t is not None)
    return _TAGS[slot]


def plan_cross(
    spec: CommandSpec, args: list[bytes], owner: bytes, token: bytes
) -> CrossShard | bytes:
    """The plan of ``args`` (whose keys span shards, ``spec.merger`` in `COMPUTED`), or the
    reply that refuses it (CROSSSLOT). ``token``: unique among the router's commands in
    flight (part of the copies' names)."""
    slot_of = key_slot
    try:
        positions = cmds.key_positions(spec, args)
    except KeySpecError as exc:
        return error_reply(str(exc))
    if not positions:
        return CROSSSLOT
    shards = [owner[slot_of(args[pos])] for pos in positions]
    kind = spec.merger
    if kind == SORT_STORE:
        if len(positions) < 2 or _sort_reads_other_keys(args):
            return CROSSSLOT
        home = len(positions) - 1  # the STORE destination
    elif kind == GEO_STORE:
        if len(positions) < 2:
            return CROSSSLOT
        # the destination Redis writes: the later of STORE and STOREDIST in the arguments
        home = max(range(1, len(positions)), key=lambda i: positions[i])
    elif kind == STORE_FIRST:
        home = 0
    elif kind == READ:
        counts: dict[int, int] = {}
        for shard in shards:
            counts[shard] = counts.get(shard, 0) + 1
        best = max(counts.values())
        home = next(i for i, shard in enumerate(shards) if counts[shard] == best)
    else:
        return CROSSSLOT
    anchor = shards[home]
    tag = b"{" + slot_tag(slot_of(args[positions[home]])) + b"}:" + token + b":"
    out = list(args)
    temps: dict[bytes, bytes] = {}
    fetch: list[tuple[int, bytes]] = []
    for pos, shard in zip(positions, shards, strict=True):
        if shard == anchor:
            continue
        key = args[pos]
        temp = temps.get(key)
        if temp is None:
            temp = temps[key] = TEMP_PREFIX + tag + str(len(fetch)).encode()
            fetch.append((shard, key))
        out[pos] = temp
    return CrossShard(anchor, fetch, list(temps.values()), out)


def measure_request(key: bytes) -> bytes:
    """Redis's estimate of ``key``'s size (5 sampled elements: O(1) on the shard, where an
    exact count would walk a big key; the DUMP replies are counted exactly after)."""
    return encode_command([b"MEMORY", b"USAGE", key])


def dump_request(key: bytes) -> bytes:
    return encode_command([b"DUMP", key])


def first_error(replies: list[bytes]) -> bytes | None:
    for raw in replies:
        if raw[:1] == b"-":
            return raw
    return None


def measured(replies: list[bytes]) -> int | bytes:
    """The bytes ``MEMORY USAGE`` reports for the foreign keys (0 for a missing one), or
    the first error."""
    total = 0
    for raw in replies:
        if raw[:1] == b":":
            total += int(raw[1:-2])
        elif raw[:1] == b"-":
            return raw
    return total


def _is_nil(raw: bytes) -> bool:
    return raw == b"$-1\r\n" or raw == b"_\r\n"


def dumped_bytes(dumps: list[bytes]) -> int:
    """The bytes of the copies (the DUMP replies, nil ones aside)."""
    return sum(len(raw) for raw in dumps if raw[:1] == b"$" and not _is_nil(raw))


def transaction(cross: CrossShard, dumps: list[bytes]) -> tuple[list[bytes], int]:
    """The requests sent to the anchor, in order (MULTI ... EXEC), and how many copies
    they restore. ``dumps``: the raw DUMP reply of each fetched key (nil: missing, so
    no copy: the renamed key is as missing as the original)."""
    out = [MULTI]
    restored: list[bytes] = []
    ttl = str(TEMP_TTL_MS).encode()
    for temp, raw in zip(cross.temps, dumps, strict=True):
        if _is_nil(raw):
            continue
        # the DUMP reply is the payload's bulk string: spliced in as RESTORE's last argument
        head = encode_command([b"RESTORE", temp, ttl])
        out.append(b"*4" + head[2:] + raw)
        restored.append(temp)
    out.append(encode_command(cross.args))
    if restored:
        out.append(encode_command([b"DEL", *restored]))
    out.append(EXEC)
    return out, len(restored)


def result(replies: list[bytes], restored: int) -> bytes:
    """The client's reply from the anchor's replies to `transaction`: the command's own
    reply inside EXEC's, or the first error (a queued request refused, EXEC refused, a
    copy not restored)."""
    err = first_error(replies[:-1])
    if err is not None:
        return err
    exec_reply = replies[-1]
    if exec_reply[:1] == b"-":
        return exec_reply
    items = split_array(exec_reply)
    if items is None or len(items) < restored + 1:
        return error_reply(f"ERR router expected EXEC's replies, got {exec_reply[:60]!r}")
    for item in items[:restored]:
        if item[:1] == b"-":
            return item
    return items[restored]
