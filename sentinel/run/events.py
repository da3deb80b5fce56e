"""The sentinel's event log: one sentence per transition, logged and streamed on ``GET /events``.

Owns `EventLog`. Every `sentinel.decide.model.Event` (sdown, odown, vote,
elected, promoted, switch, abort, topology, ...) is logged once at INFO on
the ``sentinel`` logger as ``[kind] text``, stamped with the wall-clock
time, kept in a bounded backlog (the last `EVENT_BACKLOG`, for new
subscribers) and offered to every live subscriber's queue. Invariant:
`EventLog.emit` never blocks, awaits or raises - a subscriber whose queue
is full misses that event and its stream goes on; a new subscriber gets the
backlog and then every later event, with no gap and no repeat.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time

from sentinel.decide.model import Event

log = logging.getLogger("sentinel")

EVENT_BACKLOG = 200  # events kept for new GET /events subscribers

Stamped = tuple[float, Event]  # (time.time() when emitted, the event)


class EventLog:
    def __init__(self, backlog: int = EVENT_BACKLOG) -> None:
        self.backlog: collections.deque[Stamped] = collections.deque(maxlen=backlog)
        self.subscribers: set[asyncio.Queue[Stamped]] = set()

    def emit(self, event: Event) -> None:
        log.info("[%s] %s", event.kind, event.text)
        item = (time.time(), event)
        self.backlog.append(item)
        for q in list(self.subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                q.put_nowait(item)

    def emit_if(self, event: Event | None) -> None:
        """`emit` ``event`` unless it is None."""
        if event is not None:
            self.emit(event)

    def subscribe(self, queue: asyncio.Queue[Stamped]) -> list[Stamped]:
        """Offer every later event to ``queue``; returns the backlog up to now."""
        self.subscribers.add(queue)
        return list(self.backlog)

    def unsubscribe(self, queue: asyncio.Queue[Stamped]) -> None:
        self.subscribers.discard(queue)
