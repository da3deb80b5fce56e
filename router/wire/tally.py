"""Log lines that many connections would write at once, written once per window.

A failover drops every subscription connection to the shard at the same moment,
and each client retries with backoff: one line per client per retry made 500
INFO lines in 1.2 s for 100 subscribers. `LogTally` counts the distinct clients
(``who``) behind one message and writes it once, ``window`` seconds after the
first of them, with the count: ``shard a (127.0.0.1:7001): 100 subscription
connections lost; resubscribing``.

Invariant: every message added is written within ``window`` seconds (a timer
is armed whenever something is counted); nothing else is kept.
"""

from __future__ import annotations

import asyncio
import logging

WINDOW_S = 1.0


class LogTally:
    def __init__(self, logger: logging.Logger, window: float = WINDOW_S) -> None:
        self.log = logger
        self.window = window
        self.counts: dict[str, set[int]] = {}  # %-template (one %d: the count) -> whos
        self._timer: asyncio.TimerHandle | None = None

    def add(self, template: str, who: int) -> None:
        """Count ``who`` (a client) for ``template``, written with the count at the window's end."""
        self.counts.setdefault(template, set()).add(who)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.window, self.flush)

    def flush(self) -> None:
        self._timer = None
        counts, self.counts = self.counts, {}
        for template, whos in counts.items():
            self.log.info(template, len(whos))
