"""Live edits of cluster.yaml: reload on SIGHUP, on ``POST /reload``, and when the file changes.

A reload parses and validates the whole file first; an invalid edit is
rejected with one log line per problem and the running config stays. A valid
one is handed to `Router.apply_config`, which swaps it in atomically without
dropping client connections. Topology edits (slot ranges, shards, replicas)
apply at once on a router that has no sentinels; with sentinels, they hold
the authority over epochs, so the router leaves the slot map to them (they
reload the same file and publish it as a new epoch).

Invariant: a reload never leaves a half-applied config; the counters
``applied``/``rejected`` say how each ended.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from slotwarden.cluster.config import load
from slotwarden.cluster.errors import ConfigError
from slotwarden.cluster.filewatch import POLL_S, FileWatch

if TYPE_CHECKING:
    from router.server import Router

log = logging.getLogger("slotwarden.reload")


class Reloader:
    def __init__(self, router: Router, path: str) -> None:
        self.router = router
        self.path = path
        self.applied = 0
        self.rejected = 0
        self.last_ok = True  # the config in use at start counts as a good one
        self.file = FileWatch(path)

    def reload(self, reason: str) -> tuple[bool, list[str]]:
        """Reload now. Returns (applied, problems or changes)."""
        self.file.mark()
        try:
            config = load(self.path)
        except ConfigError as exc:
            self.rejected += 1
            self.last_ok = False
            log.error("reload (%s) rejected: %d problem(s); keeping the running config",
                      reason, len(exc.problems))  # fmt: skip
            for problem in exc.problems:
                log.error("reload rejected: %s", problem)
            return False, list(exc.problems)
        changes = self.router.apply_config(config)
        self.applied += 1
        self.last_ok = True
        if changes:
            log.info("reload (%s) applied: %s", reason, "; ".join(changes))
        else:
            log.info("reload (%s): nothing changed", reason)
        return True, changes

    async def watch(self) -> None:
        """Reload whenever the file changes (until cancelled)."""
        while True:
            await asyncio.sleep(POLL_S)
            if self.file.changed():
                self.reload("file changed")
