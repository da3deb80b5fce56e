"""One fan-in for every "wait for N replies, then merge them into one".

Envoy's ``FragmentedRequest`` + ``PendingRequest(parent, index)``:

    FanIn(count, merger, done)
      FanInPart(fan, 0) ─┐
      FanInPart(fan, 1) ─┼─ on_reply(raw) ─► parts[i] ─ last one in? ─► merger(parts) ─► done(reply)
      FanInPart(fan, n) ─┘

Used by fan-outs (MGET/MSET/DEL split by shard, ALL_MASTERS commands, PUBSUB
introspection: router.wire.client), blocking commands (one part for BLPOP & co., one
per master for WAIT: router.wire.client_state) and (un)subscribe confirmations (one part per
connection the request was spread over, `add`-ed as it is spread:
router.wire.subscriber). A part is a `router.wire.ports.Waiter`.

Pure, no I/O. Invariants: ``done`` is called exactly once, when the last part
is in, with the parts in part order (not arrival order); a merger that raises
becomes an error reply (a merge bug must not kill the client's connection).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from router.decide.merge import Merger
from slotwarden.resp.encode import error_reply

log = logging.getLogger("slotwarden.frontend")


def merged(merge: Merger, parts: list[bytes]) -> bytes:
    """``merge(parts)``; a merger that raises becomes an error reply (a merge bug must
    not kill the client's connection). Also the C hot path's fallback
    (router.wire.client.merge_fanout)."""
    try:
        return merge(parts)
    except Exception as exc:
        log.exception("merge failed")
        return error_reply(f"ERR router could not merge replies: {exc}")


class FanIn:
    __slots__ = ("done", "merge", "parts", "remaining")

    def __init__(self, count: int, merger: Merger, done: Callable[[bytes], None]) -> None:
        self.merge = merger
        self.done = done
        self.parts: list[bytes] = [b""] * count
        self.remaining = count

    def add(self) -> FanInPart:
        """One more part, for a fan-in whose parts are known only as it is spread
        (hold one part back until then, so that it cannot end early)."""
        self.parts.append(b"")
        self.remaining += 1
        return FanInPart(self, len(self.parts) - 1)

    def on_part(self, index: int, raw: bytes) -> None:
        self.parts[index] = raw
        self.remaining -= 1
        if self.remaining == 0:
            parts, self.parts = self.parts, []
            self.done(merged(self.merge, parts))


class FanInPart:
    """The reply slot of one part of a `FanIn`."""

    __slots__ = ("fan", "index")

    def __init__(self, fan: FanIn, index: int) -> None:
        self.fan = fan
        self.index = index

    def on_reply(self, raw: bytes) -> None:
        self.fan.on_part(self.index, raw)
