"""router.decide.large: a very large fan-out split a piece at a time plans what plan_fanout plans.

Same parts (one per shard, every key of that shard in request order, in order
of each shard's first key), and a merger that merges the shards' replies into
the same reply; every key on one shard gives that shard's index. Pure: no
server, no loop.
"""

from __future__ import annotations

import random

import pytest

from router.commands.spec import lookup
from router.decide.large import PIECE_KEYS, LargeFanout, is_large
from router.decide.plan import Fanout, plan_fanout
from slotwarden.cluster.slots import key_hash_slot
from slotwarden.cluster.topology import Address, Shard, SlotMap

SLOTMAP = SlotMap.build(
    4,
    [Shard(n, Address("127.0.0.1", 7000 + i)) for i, n in enumerate("abcde")],
    [[(0, 10), (12001, 12001)], [(11, 5000)], [(5001, 5001)], [(5002, 12000)], [(12002, 16383)]],
)


def split(name: bytes, args: list[bytes], resp3: bool = False) -> tuple[int, int | Fanout]:
    large = LargeFanout(lookup([name, *args[1:2]]), args, SLOTMAP.owner)  # type: ignore[arg-type]
    steps = 1
    while not large.step():
        steps += 1
    return steps, large.finish(resp3)


def reply_of(piece: bytes, values: dict[bytes, bytes]) -> bytes:
    """What a shard answers to an MGET piece, its keys looked up in ``values``."""
    parts = piece.split(b"\r\n")
    keys = parts[4::2]
    out = [b"*%d\r\n" % len(keys)]
    for key in keys:
        v = values.get(key)
        out.append(b"$-1\r\n" if v is None else b"$%d\r\n%b\r\n" % (len(v), v))
    return b"".join(out)


@pytest.mark.parametrize("name", [b"MGET", b"DEL", b"EXISTS", b"MSET"])
def test_large_fanout_plans_what_plan_fanout_plans(name: bytes) -> None:
    rng = random.Random(name)
    spec = lookup([name, b"k"])
    assert spec is not None
    step = spec.split_step
    nkeys = 2 * PIECE_KEYS + 17
    keys = [b"k%d" % rng.randrange(10**9) for _ in range(nkeys)]
    args = [name]
    for key in keys:
        args += [key, b"v" + key] if step == 2 else [key]
    assert is_large(spec, len(args)) and not is_large(spec, 1 + PIECE_KEYS * step)
    steps, got = split(name, args)
    want = plan_fanout(spec, args, SLOTMAP)
    assert steps == 3
    assert type(got) is Fanout and type(want) is Fanout
    assert got.parts == want.parts
    assert [shard for shard, _ in got.parts] == list(
        dict.fromkeys(SLOTMAP.owner[key_hash_slot(k)] for k in keys)
    )
    if name == b"MGET":
        values = {k: b"val-" + k for k in keys[::3]}
        replies = [reply_of(piece, values) for _, piece in got.parts]
        assert got.merge(replies) == want.merge(replies)
        assert got.merge(replies).startswith(b"*%d\r\n$%d\r\nval-" % (nkeys, len(keys[0]) + 4))


def test_large_fanout_on_one_shard_is_that_shard() -> None:
    args = [b"MGET", *(b"{tag}%d" % i for i in range(PIECE_KEYS + 5))]
    steps, got = split(b"MGET", args)
    assert steps == 2 and got == SLOTMAP.owner[key_hash_slot(b"{tag}")]
