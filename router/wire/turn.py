"""One turn of output: the connections written to, flushed once at the turn's end.

    read callbacks of this turn ──► dirty_backends / dirty_clients ──► call_soon(flush_now):
      (many clients, many replies)     (each connection once)            one write per socket

Connections append themselves to ``dirty_backends`` / ``dirty_clients`` the
first time they have output in a turn and then ask for `flush`; the flush
runs once, after every read callback of the event-loop pass (`_flush_now`,
"the loop's pass"), so requests from many clients to one backend share one
``write`` (and replies to one client too).

A turn can also end earlier, in place, when an early write leaves nothing
dirty (no ``call_soon``):

- A backend read ends with `flush_replies`: a client whose every reply is
  in is written at once (waiting would only add a loop pass: with one
  client, the latency of a ``call_soon`` round); one still owed replies
  from other shards waits for the turn's end, where they share one
  ``write``.
- A client read ends with `flush_requests`, Nagle's rule for requests: when
  the loop is quiet (``solo``: the client reads between its last two passes
  that had any were one), nothing else waits for this turn's end (not
  scheduled, no client output) and no backend made dirty this turn had
  requests in flight (``busy`` unset), the dirty backends are written at
  once; otherwise the turn's requests to a backend share one ``write`` at
  its end, as before. Reads written early one by one keep counting towards
  ``solo``, so several in one loop pass make the loop busy again.

An exception is only ever raised by the turn's end (`_flush_now`), never into
a read callback (asyncio would close that connection).

The turn also carries the latency sampling flag: ``sample_due`` is set at
the start of each turn (at the loop's pass or an end in place), and the
first single-key request parsed in the turn clears it and is timed
(router.wire.client); with ends in place more than one request per loop
pass can be timed.

With the C hot path built (`router.wire.hot`) `LoopTurn` is its C twin of
`PyLoopTurn` (the connections' C methods append to its lists and schedule it
without a Python frame).

Invariant: a connection is in a dirty list at most once per turn (its own
``dirty`` flag guards the append; one whose flush raised is put back for
`_flush_now` and may be appended once more), and everything in the lists is
flushed before the flush returns, including output produced by the flush
itself, and even past a connection whose flush raises (a bug: the first
exception is raised once the others are written).
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

    __slots__ = (
        "_loop", "_scheduled", "busy", "dirty_backends", "dirty_clients", "reads", "sample_due",
        "solo",
    )  # fmt: skip

    def __init__(self) -> None:
        self.dirty_backends: list[Flushable] = []
        self.dirty_clients: list[Flushable] = []
        # The first single-key request parsed in each event-loop turn is timed
        # (router.wire.client); every other kind of request is timed.
        self.sample_due = True
        # a backend with requests in flight was made dirty this turn (router.wire.backend)
        self.busy = False
        self.reads = 0  # client reads since the last loop pass (_flush_now) that had any
        self.solo = True  # the loop is quiet: one client read between such passes
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
        self._settle()

    def flush_requests(self) -> None:
        """At the end of a client read: Nagle's rule. When the loop is quiet (`solo`: one
        client read between its last two passes that had any), nothing else waits for the end of
        this one (not scheduled, no client output) and no backend made dirty had requests
        in flight (`busy` unset), write those backends now: one loop pass sooner, the
        latency of a lone client. Otherwise `flush`: at the turn's end the requests of
        many clients share one write per backend. A backend whose flush raises (a bug)
        stays for `_flush_now`, which raises it: never the client read's callback, whose
        exception would close the client connection."""
        self.reads += 1
        if (
            self._scheduled
            or self.busy
            or not self.solo
            or self.dirty_clients
            or not self.dirty_backends
        ):
            self.flush()
            return
        backends, self.dirty_backends = self.dirty_backends, []
        for conn in backends:
            try:
                conn.flush()
            except Exception:  # raised again by _flush_now, at the turn's end
                self.dirty_backends.append(conn)
        self._settle()

    def _settle(self) -> None:
        """After an early write: the turn's end scheduled if anything is still dirty;
        else, unless scheduled, the turn is over here (as `_flush_now` would say)."""
        if self._scheduled or self.dirty_backends or self.dirty_clients:
            self.flush()
            return
        self._end(loop_pass=False)

    def _end(self, loop_pass: bool) -> None:
        """The turn is over: the next starts free (not busy) and times its first
        single-key request. At the loop's pass (`_flush_now`) the client reads since the
        last such end set `solo`: one, a quiet loop; several, a busy one; none, as
        before. A turn ended in place keeps counting them: reads of one loop pass
        written early one by one add up there."""
        self.busy = False
        if loop_pass and self.reads:
            self.solo = self.reads == 1
            self.reads = 0
        self.sample_due = True

    def _flush_now(self) -> None:
        self._scheduled = False
        self._end(loop_pass=True)
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
