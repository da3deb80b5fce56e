"""Cross-shard MULTI/EXEC (``router.transactions: split``): one MULTI/EXEC per shard.

Pure, no I/O. A split transaction's queued commands (`router.decide.txn`:
`Routed`, `Fan`, `LocalItem`) become, at EXEC, one list of requests per
shard touched (`plan_split`); router.wire.client_state sends each as
``MULTI … EXEC`` in one contiguous write, and `assemble` rebuilds the one
array the client gets from the shards' EXEC arrays:

    queued:  SET a 1 │ MSET a 1 c 3 (Fan) │ PING (local) │ GET c
    shard 0: MULTI  SET a 1   MSET a 1        EXEC ─► [+OK, +OK]
    shard 2: MULTI  MSET c 3  GET c           EXEC ─► [+OK, $1 3]
    client:  [+OK, merge_all_ok(+OK, +OK), +PONG, $1 3]

`queue_entry` decides, at queue time, what each command becomes. Keyless
commands (TIME, LASTSAVE …) run on the watched shard, else on the first
shard a keyed command picked, else shard 0. The watched shard (if any)
is first in `SplitPlan.order`: the caller runs it alone first, and the
others only once it has committed, so a WATCH conflict never follows a
partial commit.

Invariants: each shard's part is atomic (its own MULTI/EXEC); the whole is
not isolated across shards. A shard whose EXEC does not answer the array
expected (an error: ``-EXECABORT`` from a shard-side queue error, OOM,
``-CLUSTERDOWN``; or anything else) yields that error, naming the shard, at
the places of its commands; the other shards' replies are kept, because they
may have committed — a split transaction never answers EXECABORT or nil for
the whole once a shard may have committed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from router.commands.spec import CommandSpec, Shape
from router.decide import plan as planner
from router.decide.merge import Merger
from router.decide.txn import Fan, LocalItem, Routed
from router.errors import CROSSSLOT
from slotwarden.cluster.topology import SlotMap
from slotwarden.resp.encode import encode_array, error_reply
from slotwarden.resp.replies import split_array

# A blocking pop over keys of several shards cannot be split without risking a lost or
# duplicated element (each shard would pop on its own): refused, with the recipe.
BLOCKING_CROSSSLOT = error_reply(
    "CROSSSLOT Keys in request don't hash to the same slot (a blocking command "
    "through the router needs its keys on one shard: give them one hash tag, "
    "e.g. {queue}:high {queue}:low)"
)


FANOUT_SHAPES = (Shape.FANOUT_ORDERED, Shape.FANOUT_SUM, Shape.FANOUT_OK)


def queue_entry(
    spec: CommandSpec, args: list[bytes], raw: bytes, slotmap: SlotMap, resp3: bool
) -> Routed | Fan | bytes:
    """What a command queued in a split transaction becomes: a `Routed` (one shard, or
    None: keyless), a `Fan` (MSET, MGET, DEL, UNLINK, EXISTS, TOUCH over several
    shards: the parts and the merger their row names, as outside MULTI), or the
    queue-time error that dooms the transaction (a blocking pop over several
    shards, a command with keys on several shards that cannot be split ...)."""
    if spec.shape in FANOUT_SHAPES:
        plan = planner.plan_fanout(spec, args, slotmap, resp3)
        if type(plan) is int:
            return Routed(plan, raw)
        if type(plan) is planner.Fanout:
            return Fan(plan.parts, plan.merge)
        return plan  # type: ignore[return-value]
    shard = planner.plan_queued(spec, args, slotmap)
    if type(shard) is bytes:
        return BLOCKING_CROSSSLOT if shard == CROSSSLOT and spec.blocks is not None else shard
    return Routed(shard, raw)  # type: ignore[arg-type]


@dataclass(slots=True)
class Place:
    """Where one queued command's reply comes from at EXEC."""

    local: bytes | None = None  # the router's own reply (a LocalItem)
    parts: list[tuple[int, int]] = field(default_factory=list)  # (shard, index in its EXEC)
    merge: Merger | None = None  # several parts: the row's merger


@dataclass(slots=True)
class SplitPlan:
    order: list[int]  # the shards to run, the watched one first
    requests: dict[int, list[bytes]]  # per shard, the commands between its MULTI and EXEC
    places: list[Place]  # one per queued command, in the client's order

    @property
    def split(self) -> bool:
        """True if more than one shard runs a part."""
        return len(self.order) > 1


def plan_split(
    items: list[bytes | LocalItem | Routed | Fan],
    watched: int | None,
    answer: Callable[[LocalItem], bytes],
) -> SplitPlan:
    """Group a split transaction's items by shard; ``watched``: the WATCH shard (it
    always runs, even with nothing queued for it: its EXEC checks the watched keys);
    ``answer`` gives a local item's reply (called in queue order)."""
    home = watched
    if home is None:
        for item in items:
            if type(item) is Routed and item.shard is not None:
                home = item.shard
                break
            if type(item) is Fan:
                home = item.parts[0][0]
                break
    if home is None:
        home = 0
    requests: dict[int, list[bytes]] = {}
    order: list[int] = []
    if watched is not None:
        requests[watched] = []
        order.append(watched)

    def put(shard: int, raw: bytes) -> tuple[int, int]:
        queue = requests.get(shard)
        if queue is None:
            queue = requests[shard] = []
            order.append(shard)
        queue.append(raw)
        return shard, len(queue) - 1

    places: list[Place] = []
    for item in items:
        if type(item) is LocalItem:
            places.append(Place(local=answer(item)))
        elif type(item) is Routed:
            shard = home if item.shard is None else item.shard
            places.append(Place(parts=[put(shard, item.raw)]))
        elif type(item) is Fan:
            parts = [put(shard, raw) for shard, raw in item.parts]
            places.append(Place(parts=parts, merge=item.merge))
        else:  # a single-shard mode item: not expected here
            raise TypeError(f"not a split transaction item: {item!r}")
    return SplitPlan(order, requests, places)


def shard_failed(reply: bytes, shard_name: str) -> bytes:
    """The error a failed shard's commands get: its own error, naming the shard."""
    where = f"(shard {shard_name}'s part of the split transaction)"
    if reply[:1] == b"-":
        message = reply[1:].rstrip(b"\r\n").decode("utf-8", "replace")
        return error_reply(f"{message} {where}")
    return error_reply(f"ERR unexpected EXEC reply {reply[:60]!r} {where}")


def is_nil(reply: bytes) -> bool:
    """EXEC's answer to a WATCH conflict (RESP2 ``*-1``, RESP3 ``_``)."""
    return reply == b"*-1\r\n" or reply == b"_\r\n"


def assemble(plan: SplitPlan, replies: list[bytes], names: list[str]) -> bytes:
    """EXEC's reply to the client from each shard's EXEC reply (in ``plan.order``);
    ``names``: the shards' names, by index."""
    arrays: dict[int, list[bytes]] = {}
    for shard, raw in zip(plan.order, replies, strict=True):
        expected = len(plan.requests[shard])
        items = None if is_nil(raw) else split_array(raw)  # (*-1 splits as [])
        if items is None or len(items) != expected:
            name = names[shard] if shard < len(names) else str(shard)
            items = [shard_failed(raw, name)] * expected
        arrays[shard] = items
    out: list[bytes] = []
    for place in plan.places:
        if place.local is not None:
            out.append(place.local)
        elif place.merge is None:
            shard, index = place.parts[0]
            out.append(arrays[shard][index])
        else:
            out.append(place.merge([arrays[shard][index] for shard, index in place.parts]))
    return encode_array(out)
