"""One event-loop turn of output: the connections written to, flushed once at the turn's end.

    read callbacks of this turn ──► dirty_backends / dirty_clients ──► call_soon(flush_now):
      (many clients, many replies)     (each connection once)            one write per socket

Connections append themselves to ``dirty_backends`` / ``dirty_clients`` the
first time they have output in a turn and then ask for `flush`; the flush
runs once, after every read callback of the turn, so requests from many
clients to one backend share one ``write`` (and replies to one client too).
A backend read ends with `flush_replies`: a client whose every reply is in
is written at once (waiting would only add a loop pass: with one client,
the latency of a ``call_soon`` round); one still owed replies from other
shards waits for the turn's end, where they share one ``write``. An
exception is only ever raised by the turn's end (`_flush_now`), never into
a backend's read callback.

The turn also carries the latency sampling flag: ``sample_due`` is set at
the start of each turn, and the first single-key request parsed in the turn
clears it and is timed (router.wire.client).

With the C hot path built (`router.wire.hot`) `LoopTurn` is its C twin of
`PyLoopTurn` (the connections' C methods append to its lists and schedule it
without a Python frame).

Invariant: a connection is in a dirty list at most once per turn (its own
``dirty`` flag guards the append), and everything in the lists is flushed
before the flush returns, including output produced by the flush itself, and
even past a connection whose flush raises (a bug: the first exception is
raised once the others are written).
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from router.wire.hot import H


class Flushable(Protocol):
    """A connection with output to write at the end of the turn."""

    def flush(self) -> None: ...

    def replies_all_in(self) -> bool:
        """(Clients) every reply owed is in: `flush` would leave nothing waiting."""
        ...


class PyLoopTurn:
    """The reference; `LoopTurn` is the C one (router.wire._hot) when built."""

    __slots__ = ("_loop", "_scheduled", "dirty_backends", "dirty_clients", "sample_due")

    def __init__(self) -> None:
        self.dirty_backends: list[Flushable] = []
        self.dirty_clients: list[Flushable] = []
        # The first single-key request parsed in each event-loop turn is timed
        # (router.wire.client); every other kind of request is timed.
        self.sample_due = True
        self._scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None  # cached at the first flush

    def flush(self) -> None:
        """Ask for what this loop turn produced to be written, once, after every
        read callback of the turn has run (so requests from many clients to one
        backend share one ``write``)."""
        if not self._scheduled:
            self._scheduled = True
            loop = self._loop
            if loop is None:
                loop = self._loop = asyncio.get_running_loop()
            loop.call_soon(self._flush_now)

    def flush_replies(self) -> None:
        """At the end of a backend read: write at once the clients every reply of which
        is in (nothing more to wait for: the end of the turn would write the same bytes,
        one loop pass later); the others stay for the end of the turn, where replies
        from their other shards join them in one write. A client whose check or flush
        raises (a bug) stays too, and `_flush_now` raises it: never the backend read's
        callback, whose exception would close the backend connection."""
        clients, self.dirty_clients = self.dirty_clients, []
        for conn in clients:
            try:
                if conn.replies_all_in():
                    conn.flush()
                    continue
            except Exception:  # raised again by _flush_now, at the turn's end
                pass
            self.dirty_clients.append(conn)
        self.flush()

    def _flush_now(self) -> None:
        self._scheduled = False
        self.sample_due = True
        failed: Exception | None = None
        while self.dirty_backends or self.dirty_clients:
            backends, self.dirty_backends = self.dirty_backends, []
            failed = _flush_each(backends, failed)
            clients, self.dirty_clients = self.dirty_clients, []
            failed = _flush_each(clients, failed)
        if failed is not None:  # a bug: raised once the others are written
            raise failed


def _flush_each(conns: list[Flushable], failed: Exception | None) -> Exception | None:
    """Flush every connection, even past one whose flush raises (it would stay marked
    dirty and never be flushed again); the first exception is returned."""
    for conn in conns:
        try:
            conn.flush()
        except Exception as exc:
            failed = failed or exc
    return failed


# The loop turn the router uses: router.wire._hot's C type when the hot path is built
# (same attributes, same methods), else the Python reference above.
LoopTurn = H.LoopTurn if H is not None else PyLoopTurn
