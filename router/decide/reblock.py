"""Re-blocking: a blocking command blocked on a shard whose slot starts migrating.

Pure, no I/O (the I/O half is `router.wire.reblock`). A client blocked on a
shard (BLPOP k 0 on shard a) would stay blocked there when k's slot starts
moving a -> b: producers' pushes now go to b. When a new slot map has a slot of
the blocked command's keys served by another shard (a migration that is now
``moving``, its target; or a new owner), the router releases the command on the
shard (``CLIENT UNBLOCK <id> TIMEOUT``: the shard answers it itself, so an
element popped at that moment is delivered) and, if the answer is the
timeout-nil its release caused, sends the command again through the keyed path
(held while preparing, its keys moved when moving, then blocked on the target)
with the time it has left. While the migration is ``preparing`` the command
stays blocked on the source: the keys are still there and nobody moves them yet
(releasing it then would only hold it at the router, and a hold longer than
command_timeout_ms answers -TRYAGAIN):

    affected(spec, args, shard, new) ─► True: release it on the shard
    reissue(spec, args)             ─► False: never released (XREAD ... $, WAIT)
    is_nil(reply)                   ─► the timeout answer (nil array / nil bulk / RESP3 null)
    with_timeout(spec, args, left)  ─► the arguments with the remaining timeout
                                       (None: 0 stays 0, block forever)

Covered: BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BZPOPMIN, BZPOPMAX, BLMPOP, BZMPOP (their
timeout in seconds, a double), XREAD/XREADGROUP BLOCK (milliseconds, an integer) with
explicit ids or ``>``. Not covered: XREAD with ``$`` (or ``+``): ``$`` means "after the
last entry at the time of the call", which another shard, after the move, cannot
answer; such a command stays blocked where it is (README *Resharding limits*).
"""

from __future__ import annotations

import math

from router.commands import table
from router.commands.key_finders import KeySpecError
from router.commands.spec import CommandSpec, key_positions
from slotwarden.cluster.topology import SlotMap
from slotwarden.resp.accel import key_slot

# The answers of a blocking command released with CLIENT UNBLOCK ... TIMEOUT (its
# timeout answer): a nil array (BLPOP, BZPOPMIN, BLMPOP, XREAD), a nil bulk (BLMOVE,
# BRPOPLPUSH), or RESP3's null.
NILS = (b"*-1\r\n", b"$-1\r\n", b"_\r\n")
# Less time than this left: the command's own timeout is (about) over, its nil is
# forwarded rather than the command sent again.
MIN_LEFT_S = 0.01


def is_nil(reply: bytes) -> bool:
    return reply in NILS


def _ids_after_streams(args: list[bytes]) -> list[bytes] | None:
    """The ids of XREAD/XREADGROUP (the second half after STREAMS), None if malformed."""
    for i in range(1, len(args)):
        if args[i].upper() == b"STREAMS":
            rest = args[i + 1 :]
            if not rest or len(rest) % 2:
                return None
            return rest[len(rest) // 2 :]
    return None


def reissue(spec: CommandSpec, args: list[bytes]) -> bool:
    """True if a blocked ``args`` may be released and sent again elsewhere."""
    blocks = spec.blocks
    if blocks in (table.LAST, table.FIRST):
        return True
    if blocks == table.BLOCK:
        ids = _ids_after_streams(args)
        return ids is not None and not any(i in (b"$", b"+") for i in ids)
    return False  # WAIT, and anything unknown


def _key_slots(spec: CommandSpec, args: list[bytes]) -> list[int]:
    try:
        positions = key_positions(spec, args)
    except KeySpecError:
        return []
    return [key_slot(args[i]) for i in positions if i < len(args)]


def affected(spec: CommandSpec, args: list[bytes], blocked_on: str, new: SlotMap) -> bool:
    """True if ``args``, blocked on shard ``blocked_on``, is on the wrong shard under
    ``new``: a slot of its keys is served by another shard now (a migration's target
    once it is ``moving``, or a new owner). While a slot of its keys is ``preparing``
    it stays where it is: nobody moves that slot's keys yet, and a push made meanwhile
    by a router still on an older map reaches it there."""
    if not reissue(spec, args):
        return False
    slots = _key_slots(spec, args)
    if not slots or any(new.is_preparing(slot) for slot in slots):
        return False
    shards, owner = new.shards, new.owner
    return any(shards[owner[slot]].name != blocked_on for slot in slots)


def _seconds(left: float) -> bytes:
    text = f"{max(left, 0.001):.3f}".rstrip("0").rstrip(".")
    return text.encode()


def with_timeout(spec: CommandSpec, args: list[bytes], left: float | None) -> list[bytes]:
    """``args`` with the timeout replaced by ``left`` seconds (None: unchanged, the
    command blocks forever as before). Never 0 for a finite ``left``."""
    if left is None:
        return list(args)
    out = list(args)
    blocks = spec.blocks
    if blocks == table.LAST:
        out[-1] = _seconds(left)
    elif blocks == table.FIRST:
        out[1] = _seconds(left)
    elif blocks == table.BLOCK:
        at = next(i for i in range(1, len(out) - 1) if out[i].upper() == b"BLOCK")
        out[at + 1] = b"%d" % max(1, math.ceil(left * 1000))
    return out
