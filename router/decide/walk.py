"""Commands answered by asking shards one after another: SCAN and non-blocking LMPOP/ZMPOP.

Pure, no I/O (the sending is `router.wire.walk`). A walk is a small state machine:
`first` is the first ``(shard, request)``; `step` reads that request's reply and
gives either the next ``(shard, request)`` or the client's final reply (``bytes``).
A walk has at most one step per shard (SCAN) or per key (MPOP), so it is bounded.

**SCAN** (`ScanWalk`): router cursor = shard cursor << `SCAN_SHARD_BITS` | shard
index (as `router.decide.plan.plan_scan`). A call scans its cursor's shard; while
that shard's iteration ends (cursor 0), fewer than COUNT keys (default 10, as
Redis) were gathered and shards remain, the same call goes on to the next shard
from cursor 0. So a small keyspace is one call that ends with cursor 0, as one
redis-server answers it; a MATCH/TYPE filter that leaves a shard with no keys goes
on too. The keys every shard returned are concatenated; the cursor semantics are
unchanged (every key present throughout a full iteration is returned).

**LMPOP/ZMPOP** over keys of several shards (`MpopWalk`): Redis pops from the first
non-empty key in the client's order, one key only. The keys are asked in that
order, consecutive keys of one shard together (``LMPOP n k1 .. kn LEFT [COUNT c]``
on that shard), stopping at the first reply that is not nil: that reply (the
popped elements, exactly as the shard sent them) is the client's, and no later key
is touched. So it never pops from two keys and never loses or repeats an element.
Not atomic across shards: a key found empty may be filled right after, before a
later shard's key is popped. An error (WRONGTYPE, a syntax error) ends the walk
with that error, as Redis stops at it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from router.decide.merge import decode, is_own_key
from router.decide.plan import SCAN_SHARD_BITS
from slotwarden.resp.encode import encode_array, encode_bulk, encode_command, error_reply

SCAN_DEFAULT_COUNT = 10  # Redis's default COUNT
NILS = frozenset({b"*-1\r\n", b"$-1\r\n", b"_\r\n"})  # RESP2 null array / bulk, RESP3 null

Step = tuple[int, bytes]  # (shard index, encoded request)


def _scan_count(args: list[bytes]) -> int:
    """SCAN's COUNT (the last one given, as Redis reads them), else the default; a
    malformed one is the shard's to refuse (its error ends the walk)."""
    count = SCAN_DEFAULT_COUNT
    i = 2
    while i + 1 < len(args):
        if args[i].lower() == b"count" and args[i + 1].isdigit():
            count = int(args[i + 1])
        i += 2
    return max(count, 1)


@dataclass(slots=True)
class ScanWalk:
    """SCAN cursor [MATCH p] [COUNT n] [TYPE t] over the shards from the cursor's one."""

    args: list[bytes]
    shard: int
    shard_count: int
    inner: int  # the cursor to send the first shard
    count: int = 0
    keys: list[bytes] = field(default_factory=list)

    @classmethod
    def of(cls, args: list[bytes], shard_count: int) -> ScanWalk | bytes:
        """The walk for ``args``, or the error reply for a cursor that is not ours."""
        cursor_s = args[1]
        if not cursor_s.isdigit():
            return error_reply("ERR invalid cursor")
        cursor = int(cursor_s)
        shard = cursor & ((1 << SCAN_SHARD_BITS) - 1)
        if shard >= shard_count:
            return error_reply("ERR invalid cursor")
        return cls(args, shard, shard_count, cursor >> SCAN_SHARD_BITS, _scan_count(args))

    def _request(self, inner: int) -> Step:
        args = self.args
        return self.shard, encode_command([args[0], str(inner).encode(), *args[2:]])

    def first(self) -> Step:
        return self._request(self.inner)

    def step(self, raw: bytes) -> Step | bytes:
        if raw[:1] == b"-":
            return raw
        value = decode(raw)
        if not (isinstance(value, list) and len(value) == 2 and isinstance(value[1], list)):
            return error_reply(f"ERR router expected a SCAN reply from a shard, got {raw[:60]!r}")
        self.keys.extend(k for k in value[1] if not is_own_key(k))  # locks: not data
        inner = int(value[0])
        if inner != 0:
            cursor = (inner << SCAN_SHARD_BITS) | self.shard
        elif self.shard + 1 < self.shard_count:
            self.shard += 1
            if len(self.keys) < self.count:  # this shard is done and COUNT not reached
                return self._request(0)
            cursor = self.shard
        else:
            cursor = 0
        keys = encode_array([encode_bulk(k) for k in self.keys])
        return encode_array([encode_bulk(str(cursor).encode()), keys])


@dataclass(slots=True)
class MpopWalk:
    """LMPOP/ZMPOP numkeys key [key ...] <where> [COUNT n], keys asked in order."""

    steps: list[Step]
    at: int = 0

    @classmethod
    def of(
        cls, args: list[bytes], owner: bytes, slot_of: Callable[[bytes], int]
    ) -> MpopWalk | bytes:
        """The walk for ``args`` (keys already found by the command's key finder);
        ``owner``: slot → shard, ``slot_of``: key → slot."""
        if not args[1].isdigit() or not 0 < int(args[1]) <= len(args) - 3:
            return error_reply("ERR numkeys should be greater than 0")
        numkeys = int(args[1])
        keys = args[2 : 2 + numkeys]
        rest = args[2 + numkeys :]
        runs: list[tuple[int, list[bytes]]] = []
        for key in keys:
            shard = owner[slot_of(key)]
            if runs and runs[-1][0] == shard:
                runs[-1][1].append(key)
            else:
                runs.append((shard, [key]))
        steps = [
            (shard, encode_command([args[0], str(len(run)).encode(), *run, *rest]))
            for shard, run in runs
        ]
        return cls(steps)

    def first(self) -> Step:
        return self.steps[0]

    def step(self, raw: bytes) -> Step | bytes:
        if raw not in NILS:  # popped (or an error): that is the reply
            return raw
        self.at += 1
        if self.at < len(self.steps):
            return self.steps[self.at]
        return raw  # every key empty: the nil, in the client's protocol


Walk = ScanWalk | MpopWalk
