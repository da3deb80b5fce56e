"""Planning: which shard(s) answer a request, decided from its arguments and the slot map.

Pure, no I/O. `plan` returns one of three things, cheapest first:

- an ``int`` — forward the request's original bytes to that shard's master
  (Single; a bare int so the hot path allocates nothing),
- a `Fanout` — send each part to its shard and merge the replies,
- ``bytes`` — answer this reply at once (errors, rejections).

Commands of shape LOCAL need the client's state and are answered by the
client connection (`router.decide.builtins`), not planned here. Fan-outs are split by
`slotwarden.resp.accel.group_keys` (C when the speedups are built, else the
reference `slotwarden.resp.keys.group_keys_py`); the client loop's fan-out
fast path calls it directly, and `fanout_of` for the plan. Very large fan-outs
are split a piece per loop turn by `router.decide.large`, to the same plan. The merger of
every fan-out is the one its row in the command table names (`merger_of`);
no command name chooses one here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from router.commands import spec as cmds
from router.commands.spec import CommandSpec, KeySpecError, Shape
from router.decide import diag, info, merge, sort_patterns
from router.decide.algebra import COMPUTED
from router.decide.info import RouterFacts
from router.decide.merge import BUILT, MERGERS
from router.decide.sort_patterns import SORTS
from router.errors import CROSSSLOT, NOT_ALLOWED, not_supported, wrong_arity
from slotwarden.cluster.topology import SlotMap
from slotwarden.resp.accel import group_keys, key_slot
from slotwarden.resp.encode import encode_command, error_reply
from slotwarden.resp.keys import Grouped, group_keys_py

SCAN_SHARD_BITS = 8  # a slot map has at most 255 shards (one byte per slot)


@dataclass(frozen=True, slots=True)
class Fanout:
    parts: list[tuple[int, bytes]]  # (shard index, encoded request), merge order
    merge: merge.Merger


Plan = int | Fanout | bytes


def merger_of(spec: CommandSpec) -> merge.Merger:
    """The merger ``spec``'s row names (one that is not built per request)."""
    return MERGERS[spec.merger]  # type: ignore[index]


def _check_mergers() -> None:
    for top in cmds.TABLE.values():
        for spec in (top, *(top.subcommands or {}).values()):
            if (
                spec.merger is not None
                and spec.merger not in MERGERS
                and spec.merger not in BUILT
                and spec.merger not in diag.BUILT
                and not (spec.shape is Shape.SINGLE and spec.merger in COMPUTED)
            ):
                raise AssertionError(f"{spec.name}: no merger named {spec.merger!r}")


_check_mergers()


def plan(
    spec: CommandSpec,
    args: list[bytes],
    slotmap: SlotMap,
    info_head: RouterFacts | None = None,
    resp3: bool = False,
) -> Plan:
    """Plan a request whose command and arity are already checked; ``resp3``:
    the client speaks RESP3 (merged nils are encoded as RESP3 nulls)."""
    shape = spec.shape
    if shape is Shape.SINGLE:
        return plan_single(spec, args, slotmap)
    if shape is Shape.FANOUT_ORDERED or shape is Shape.FANOUT_SUM or shape is Shape.FANOUT_OK:
        return plan_fanout(spec, args, slotmap, resp3)
    if shape is Shape.ANY:
        if spec.merger is None:
            return 0
        # one shard answers, through the row's filter (CONFIG GET hides secrets)
        return Fanout([(0, encode_command(args))], merger_of(spec))
    if shape is Shape.ALL_MASTERS:
        return plan_all_masters(spec, args, slotmap, info_head)
    if shape is Shape.PINNED:
        return plan_pinned(spec, args, slotmap)
    if shape is Shape.REJECTED:
        return NOT_ALLOWED
    return error_reply(f"ERR router cannot plan '{spec.name}'")


def plan_single(spec: CommandSpec, args: list[bytes], slotmap: SlotMap) -> Plan:
    try:
        positions = cmds.key_positions(spec, args)
    except KeySpecError as exc:
        return error_reply(str(exc))
    if not positions:
        return 0
    shard = shard_of_keys(args, positions, slotmap.owner)
    if spec.name in SORTS and type(shard) is int:  # BY/GET patterns name keys too
        return sort_patterns.refusal(args, shard, slotmap.owner) or shard
    return shard


def shard_of_keys(args: list[bytes], positions: list[int], owner: bytes) -> int | bytes:
    """The one shard owning the keys at ``positions``, or CROSSSLOT."""
    shard = owner[key_slot(args[positions[0]])]
    for pos in positions[1:]:
        if owner[key_slot(args[pos])] != shard:
            return CROSSSLOT
    return shard


def plan_pinned(spec: CommandSpec, args: list[bytes], slotmap: SlotMap) -> Plan:
    """The PINNED commands that need no client state: PUBLISH and SPUBLISH (the
    channel's shard), PUBSUB introspection (every master, merged). The stateful
    ones (MULTI, WATCH, SUBSCRIBE, blocking ...) never get here: `router.wire.client_state`
    handles them; the rest the router cannot honour (CLIENT TRACKING ...)."""
    name = spec.name
    if name == "publish":  # the channel is not a key for COMMAND, but picks the shard
        return slotmap.owner[key_slot(args[1])]
    if spec.first:  # SPUBLISH: the shard channel is in the key range
        return plan_single(spec, args, slotmap)
    if spec.merger is not None and spec.blocks is None:
        # PUBSUB introspection over every master. Channels live on their slot's master;
        # every router client subscribes its patterns on every master, so NUMPAT is
        # the largest count any master reports, not the sum (the table's mergers).
        raw = encode_command(args)
        return Fanout([(i, raw) for i in range(len(slotmap.shards))], merger_of(spec))
    return not_supported(name.replace("|", " "))


def plan_queued(spec: CommandSpec, args: list[bytes], slotmap: SlotMap) -> int | bytes | None:
    """The shard a command queued in MULTI needs (None: any), or the error that
    rejects it at queue time (which aborts the transaction, as Redis Cluster does)."""
    shape = spec.shape
    name = spec.name
    if shape is Shape.ANY and spec.merger is not None:
        # its reply must go through the row's filter, which EXEC's reply does not
        return not_supported(name.replace("|", " "), " inside MULTI")
    if shape is Shape.ANY or name in ("unwatch", "wait"):
        return None
    if shape is Shape.REJECTED:
        return NOT_ALLOWED
    if shape is Shape.ALL_MASTERS:
        return error_reply(
            f"ERR '{name.replace('|', ' ')}' cannot be queued in MULTI through the router: "
            "it runs on every shard"
        )
    if name == "publish":
        return slotmap.owner[key_slot(args[1])]
    if shape is Shape.PINNED and not (spec.first or spec.keys):
        # SUBSCRIBE & co., PUBSUB, CLIENT TRACKING ...: no single shard can run them
        return not_supported(name.replace("|", " "), " inside MULTI")
    try:
        positions = cmds.key_positions(spec, args)
    except KeySpecError as exc:
        return error_reply(str(exc))
    if not positions:
        return None
    if (len(args) - 1) % cmds.fanout_step(shape):
        return wrong_arity(name)
    shard = shard_of_keys(args, positions, slotmap.owner)
    if name in SORTS and type(shard) is int:  # BY/GET patterns name keys too
        return sort_patterns.refusal(args, shard, slotmap.owner) or shard
    return shard


def plan_fanout(
    spec: CommandSpec,
    args: list[bytes],
    slotmap: SlotMap,
    resp3: bool = False,
    group: Callable[[list[bytes], int, bytes], Grouped] = group_keys,
) -> Plan:
    """MGET / MSET / DEL-like: split the keys (or key/value pairs) by shard."""
    step = cmds.fanout_step(spec.shape)
    if (len(args) - 1) % step:
        return wrong_arity(spec.name)
    return fanout_of(spec, group(args, step, slotmap.owner), len(args) - 1, resp3)


def plan_fanout_py(
    spec: CommandSpec, args: list[bytes], slotmap: SlotMap, resp3: bool = False
) -> Plan:
    """`plan_fanout` with the Python reference grouping, `group_keys_py`."""
    return plan_fanout(spec, args, slotmap, resp3, group_keys_py)


def fanout_of(spec: CommandSpec, grouped: Grouped, total: int, resp3: bool) -> int | Fanout:
    """The plan for keys grouped by `group_keys`: the one shard they are all on, or
    the parts and the merger of ``spec`` (``total``: how many keys, for MGET)."""
    if type(grouped) is int:
        return grouped
    parts = [(shard, piece) for shard, piece, _ in grouped]  # type: ignore[union-attr]
    if spec.merger == "ordered":
        order = [where for _, _, where in grouped]  # type: ignore[union-attr]
        return Fanout(parts, merge.merge_ordered(order, total, resp3))
    return Fanout(parts, merger_of(spec))


def plan_all_masters(
    spec: CommandSpec, args: list[bytes], slotmap: SlotMap, info_head: RouterFacts | None
) -> Plan:
    """Keyless commands sent to every master, their replies merged by the row's merger."""
    count = len(slotmap.shards)
    if spec.merger == "scan":
        return plan_scan(args, count)
    names = [shard.name for shard in slotmap.shards]
    if spec.merger == "info":  # the router's own facts and the masters' INFO, merged
        if info_head is None:
            return error_reply("ERR router has no INFO facts")
        answer = info.plan(args[1:], info_head, names)
        if isinstance(answer, bytes):
            return answer
        piece, merger = answer
        return Fanout([(i, piece) for i in range(count)], merger)
    raw = encode_command(args)
    if spec.merger in diag.BUILT:  # SLOWLOG GET, LATENCY ..., MEMORY STATS/DOCTOR
        return Fanout([(i, raw) for i in range(count)], diag.build(spec.merger, args, names))
    return Fanout([(i, raw) for i in range(count)], merger_of(spec))


def plan_scan(args: list[bytes], shard_count: int) -> Plan:
    """SCAN cursor [MATCH p] [COUNT n] [TYPE t]: one shard per call, walked in order
    (a client in normal mode goes on to the next shards in one call instead:
    `router.decide.walk.ScanWalk`, same cursors)."""
    cursor_s = args[1]
    if not cursor_s.isdigit():
        return error_reply("ERR invalid cursor")
    cursor = int(cursor_s)
    shard = cursor & ((1 << SCAN_SHARD_BITS) - 1)
    inner = cursor >> SCAN_SHARD_BITS
    if shard >= shard_count:
        return error_reply("ERR invalid cursor")
    piece = encode_command([args[0], str(inner).encode(), *args[2:]])
    return Fanout([(shard, piece)], merge.scan_cursor_merge(shard, shard_count, SCAN_SHARD_BITS))
