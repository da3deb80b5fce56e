"""router.decide.reblock: which blocked commands a new slot map sends elsewhere, and
the remaining-timeout rewrite of their arguments."""

from __future__ import annotations

import pytest

from router.commands.spec import resolve
from router.decide import reblock as rb
from slotwarden.cluster.slots import key_hash_slot
from slotwarden.cluster.topology import Address, Migration, Shard, SlotMap

SHARDS = (Shard("a", Address("h", 1)), Shard("b", Address("h", 2)))


def slotmap(state: str | None) -> SlotMap:
    """Slots 0-99 moving a -> b in ``state`` (owner b), or (None) a's, no migration."""
    if state is None:
        return SlotMap.build(1, SHARDS, [[(0, 8191)], [(8192, 16383)]], ())
    migration = Migration.of([(0, 99)], "a", "b", state=state)
    return SlotMap.build(2, SHARDS, [[(100, 8191)], [(0, 99), (8192, 16383)]], (migration,))


def key_in(lo: int, hi: int) -> bytes:
    return next(
        f"k{i}".encode() for i in range(100_000) if lo <= key_hash_slot(f"k{i}".encode()) <= hi
    )


def args(*words: bytes | str) -> list[bytes]:
    return [w.encode() if isinstance(w, str) else w for w in words]


MOVING, STAYING = key_in(0, 99), key_in(100, 8191)


def affected(req: list[bytes], shard: str, state: str | None) -> bool:
    return rb.affected(resolve(req), req, shard, slotmap(state))


def test_a_command_blocked_on_the_source_is_released_once_its_slot_is_moving() -> None:
    req = args("BLPOP", MOVING, "0")
    assert not affected(req, "a", None)  # nothing moves
    assert not affected(req, "a", "preparing")  # stays on the source while preparing
    assert affected(req, "a", "moving")  # the target serves it now
    assert not affected(req, "b", "moving")  # already blocked on the target
    assert affected(req, "b", None)  # the migration called off: back to a
    other = args("BLPOP", STAYING, "0")
    assert not affected(other, "a", "moving")


def test_which_commands_are_released() -> None:
    for req in (
        args("BRPOP", MOVING, "1.5"),
        args("BLMOVE", MOVING, MOVING, "LEFT", "RIGHT", "0"),
        args("BRPOPLPUSH", MOVING, MOVING, "0"),
        args("BZPOPMIN", MOVING, "0"),
        args("BZPOPMAX", MOVING, "0"),
        args("BLMPOP", "0", "1", MOVING, "LEFT"),
        args("BZMPOP", "0", "1", MOVING, "MIN"),
        args("XREAD", "BLOCK", "0", "STREAMS", MOVING, "0-0"),
        args("XREADGROUP", "GROUP", "g", "c", "BLOCK", "0", "STREAMS", MOVING, ">"),
    ):
        assert affected(req, "a", "moving"), req
    # "$" means "after the last entry when called": not asked of another shard
    assert not affected(args("XREAD", "BLOCK", "0", "STREAMS", MOVING, "$"), "a", "moving")
    assert not rb.reissue(resolve(args("WAIT", "1", "0")), args("WAIT", "1", "0"))


@pytest.mark.parametrize(
    ("req", "left", "want"),
    [
        (args("BLPOP", "k", "0"), None, args("BLPOP", "k", "0")),
        (args("BLPOP", "k", "k2", "5"), 2.25, args("BLPOP", "k", "k2", "2.25")),
        (
            args("BLMOVE", "s", "d", "LEFT", "RIGHT", "3"),
            1.0,
            args("BLMOVE", "s", "d", "LEFT", "RIGHT", "1"),
        ),
        (args("BZMPOP", "4", "1", "z", "MIN"), 0.0001, args("BZMPOP", "0.001", "1", "z", "MIN")),
        (
            args("XREAD", "COUNT", "1", "BLOCK", "900", "STREAMS", "s", "0-0"),
            0.3001,
            args("XREAD", "COUNT", "1", "BLOCK", "301", "STREAMS", "s", "0-0"),
        ),
        (
            args("XREADGROUP", "GROUP", "g", "c", "block", "900", "STREAMS", "s", ">"),
            0.0002,
            args("XREADGROUP", "GROUP", "g", "c", "block", "1", "STREAMS", "s", ">"),
        ),
    ],
)
def test_the_timeout_left_never_becomes_zero(
    req: list[bytes], left: float | None, want: list[bytes]
) -> None:
    assert rb.with_timeout(resolve(req), req, left) == want


def test_only_the_timeout_nil_is_taken_for_a_release() -> None:
    assert rb.is_nil(b"*-1\r\n") and rb.is_nil(b"$-1\r\n") and rb.is_nil(b"_\r\n")
    assert not rb.is_nil(b"*2\r\n$1\r\nk\r\n$1\r\nv\r\n")
    assert not rb.is_nil(b"-ERR x\r\n") and not rb.is_nil(b"*0\r\n")
