"""Very large fan-outs, split by shard a piece at a time so the event loop can serve others.

An MGET/MSET/DEL-like request with a million keys costs the router a good
part of a second to split in one go (hashing every key, re-encoding every
argument), and every other client would wait that long. `LargeFanout` does
the same work as `router.decide.plan.plan_fanout` in pieces of `PIECE_KEYS`
keys: the client connection (router.wire.client) calls `step` once per
event-loop turn and sends the result of `finish` when it is done, so other
clients are served between the pieces.

The result is the one `plan_fanout` gives: one part per shard holding all of
that shard's keys in request order (so each shard still runs its share as one
command, atomically, as before), in order of each shard's first key, with the
same merger; a request whose keys are all on one shard is that shard's index
(forward the original bytes). Pure, no I/O.
"""

from __future__ import annotations

from router.commands import spec as cmds
from router.commands.spec import CommandSpec
from router.decide.plan import Fanout, fanout_of
from slotwarden.resp.accel import group_keys
from slotwarden.resp.encode import encode_command

PIECE_KEYS = 32768  # keys split per event-loop turn (a few ms of work)


def is_large(spec: CommandSpec, nargs: int) -> bool:
    """True when a fan-out of ``nargs`` arguments is split in more than one piece."""
    return (nargs - 1) // cmds.fanout_step(spec.shape) > PIECE_KEYS


class LargeFanout:
    """The keys of ``args`` (each followed by ``step - 1`` values, arity already
    checked) split by the shard that owns them under ``owner``, `PIECE_KEYS` keys
    per `step`."""

    __slots__ = ("args", "bodies", "counts", "next", "owner", "positions", "spec", "step_")

    def __init__(self, spec: CommandSpec, args: list[bytes], owner: bytes) -> None:
        self.spec = spec
        self.args = args
        self.owner = owner
        self.step_ = cmds.fanout_step(spec.shape)
        self.next = 1  # the next argument to split
        # per shard, in order of its first key: encoded arguments, keys, key positions
        self.bodies: dict[int, list[bytes]] = {}
        self.counts: dict[int, int] = {}
        self.positions: dict[int, list[int]] = {}

    def done(self) -> bool:
        return self.next >= len(self.args)

    def step(self) -> bool:
        """Split the next piece; True when every key is split."""
        args = self.args
        step = self.step_
        end = min(len(args), self.next + PIECE_KEYS * step)
        piece = [args[0], *args[self.next : end]]
        offset = self.next - 1  # a key's position in the piece - 1 + offset: in the request
        grouped = group_keys(piece, step, self.owner)
        if type(grouped) is int:
            keys = (end - self.next) // step
            self._add(grouped, encode_command(piece), keys, range(0, keys * step, step), offset)
        else:
            for shard, encoded, where in grouped:  # type: ignore[union-attr]
                self._add(shard, encoded, len(where), where, offset)
        self.next = end
        return self.done()

    def _add(self, shard: int, encoded: bytes, keys: int, where: object, offset: int) -> None:
        # the piece's command line and name dropped: only its arguments are kept
        head = len(b"*%d\r\n" % (1 + keys * self.step_)) + len(encode_command([self.args[0]])) - 4
        body = encoded[head:]
        if shard in self.bodies:
            self.bodies[shard].append(body)
            self.counts[shard] += keys
        else:
            self.bodies[shard] = [body]
            self.counts[shard] = keys
            self.positions[shard] = []
        if self.spec.merger == "ordered":  # MGET: where each value goes in the merged reply
            self.positions[shard] += [w + offset for w in where]  # type: ignore[attr-defined]

    def finish(self, resp3: bool) -> int | Fanout:
        """The plan (`plan_fanout`'s): the one shard, or the parts and the merger."""
        name = encode_command([self.args[0]])[4:]  # "$<len>\r\n<name>\r\n"
        if len(self.bodies) == 1:
            return next(iter(self.bodies))
        grouped = [
            (
                shard,
                b"*%d\r\n" % (1 + self.counts[shard] * self.step_) + name + b"".join(bodies),
                self.positions[shard],
            )
            for shard, bodies in self.bodies.items()
        ]
        return fanout_of(self.spec, grouped, (len(self.args) - 1) // self.step_, resp3)
