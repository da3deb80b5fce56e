"""Transparent NOSCRIPT: an EVALSHA a shard answers -NOSCRIPT is retried once after SCRIPT LOAD.

`Retry` stands between a shard's connection and the client's reply slot of
an EVALSHA/EVALSHA_RO (router.wire.client forwards it so): when the shard
answers ``-NOSCRIPT`` and the router's `router.decide.scripts.ScriptCache`
knows the body, it sends ``SCRIPT LOAD body`` then the original EVALSHA
again to that shard, on the client's current connection to it (the same
pipelined connection, so the load runs first), and the retry's reply fills
the slot: the client's replies stay in request order (its FIFO waits for
the slot). Once only: the retry's own reply, whatever it is, is the answer;
an unknown body passes the NOSCRIPT through. The SCRIPT LOAD's reply is not
the client's (a failed load shows as the retry's NOSCRIPT).

Inside MULTI the EVALSHA is queued on the shard and its NOSCRIPT comes back
inside EXEC's array, after the transaction ran: it is passed through (a
retry there would run outside the transaction).
"""

from __future__ import annotations

from collections.abc import Callable

from router.wire.ports import Sender, Waiter
from slotwarden.resp.encode import encode_command

NOSCRIPT = b"-NOSCRIPT"


class _Ignored:
    """The waiter of the SCRIPT LOAD sent before a retry: its reply is nobody's."""

    __slots__ = ()

    def on_reply(self, raw: bytes) -> None:
        pass


_IGNORED = _Ignored()


class Retry:
    """The waiter of an EVALSHA sent to a shard: passes its reply to ``slot``, or on
    ``-NOSCRIPT`` with ``body`` known (looked up only then) loads it and resends once."""

    __slots__ = ("body_of", "conn_of", "raw", "sha", "slot")

    def __init__(
        self,
        slot: Waiter,
        raw: bytes,
        sha: bytes,
        body_of: Callable[[bytes], bytes | None],
        conn_of: Callable[[], Sender | None],
    ) -> None:
        self.slot = slot
        self.raw = raw
        self.sha = sha
        self.body_of = body_of  # the script cache's lookup
        self.conn_of = conn_of  # the client's connection to the shard now (None: gone)

    def on_reply(self, raw: bytes) -> None:
        if raw.startswith(NOSCRIPT):
            body = self.body_of(self.sha)
            conn = self.conn_of() if body is not None else None
            if conn is not None and body is not None:
                conn.send(encode_command([b"SCRIPT", b"LOAD", body]), _IGNORED)
                conn.send(self.raw, self.slot)
                return
        self.slot.on_reply(raw)
