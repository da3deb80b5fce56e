"""Keeping the router's slot map current: asking the sentinels, and being told.

The sentinels hold the authoritative, epoch-numbered topology. A router:

- at start, asks every sentinel at once and starts from the highest epoch any
  of them has (so a restarted router never routes to a master that a
  failover has retired, whatever cluster.yaml still says);
- then long-polls one sentinel at a time (``GET /topology?after=EPOCH``,
  registering its admin address so the leader also pushes to it), moving to
  the next sentinel when one fails;
- on a hint (a ``-READONLY`` reply, a lost master connection) asks every
  sentinel again at once instead of waiting for the long-poll.

Invariant: every map goes through `RouteTable.apply_topology`
(router.control.routes), which applies only a strictly higher epoch. On
shutdown the request in flight ends before the HTTP session closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import aiohttp

from router.control.routes import RouteTable
from slotwarden.cluster.secrets import bearer
from slotwarden.cluster.topology import Address, SlotMap

log = logging.getLogger("slotwarden.watch")

LONG_POLL_S = 20.0  # how long a sentinel may hold a watch request
ASK_TIMEOUT_S = 1.0  # a one-off question to one sentinel
RETRY_S = 0.5  # after every sentinel failed


class TopologyWatcher:
    def __init__(
        self, routes: RouteTable, sentinels: list[Address], secret: str, admin: Address | None
    ) -> None:
        self.routes = routes
        self.sentinels = sentinels
        self.admin = admin  # this router's admin address, registered with the sentinels
        self.headers = bearer(secret)
        self._hint = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None

    def hint(self) -> None:
        """Something suggests the topology changed: ask the sentinels now."""
        self._hint.set()

    async def _get(self, sentinel: Address, after: int, wait: float) -> SlotMap | None:
        assert self._session is not None
        params = {"after": str(after), "timeout": str(wait)}
        if self.admin is not None:
            params["router"] = str(self.admin)
        url = f"http://{sentinel}/topology"
        timeout = aiohttp.ClientTimeout(total=wait + ASK_TIMEOUT_S)
        async with self._session.get(
            url, params=params, headers=self.headers, timeout=timeout
        ) as resp:
            if resp.status != 200:
                raise aiohttp.ClientResponseError(
                    resp.request_info, (), status=resp.status, message=await resp.text()
                )
            return SlotMap.from_dict(await resp.json())

    async def ask_all(self) -> int:
        """Ask every sentinel at once; apply the highest epoch. Returns how many answered."""
        epoch = self.routes.route.slotmap.epoch
        results = await asyncio.gather(
            *(self._get(s, epoch, 0.0) for s in self.sentinels), return_exceptions=True
        )
        maps = [r for r in results if isinstance(r, SlotMap)]
        if maps:
            best = max(maps, key=lambda m: m.epoch)
            self.routes.apply_topology(best, source="sentinels")
        return len(maps)

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()
        answered = await self.ask_all()
        if not answered:
            log.warning("no sentinel answered; starting from %s", self.routes.running.config.path)

    async def run(self) -> None:
        """Watch until cancelled."""
        index = 0
        poll: asyncio.Future[SlotMap | None] | None = None
        hint: asyncio.Future[bool] | None = None
        try:
            while True:
                sentinel = self.sentinels[index % len(self.sentinels)]
                epoch = self.routes.route.slotmap.epoch
                poll = asyncio.ensure_future(self._get(sentinel, epoch, LONG_POLL_S))
                hint = asyncio.ensure_future(self._hint.wait())
                try:
                    await asyncio.wait({poll, hint}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    hint.cancel()
                if self._hint.is_set():
                    self._hint.clear()
                    poll.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await poll
                    await self.ask_all()
                    continue
                try:
                    slotmap = poll.result()
                except Exception as exc:
                    log.debug("sentinel %s: %s", sentinel, exc)
                    index += 1
                    if index % len(self.sentinels) == 0:
                        await asyncio.sleep(RETRY_S)
                    continue
                if slotmap is not None:
                    self.routes.apply_topology(slotmap, source=f"sentinel {sentinel}")
        finally:
            # The long poll still open must end before the session closes under it
            # (else: "Task exception was never retrieved ... Connector is closed").
            await _settle(poll, hint)
            if self._session is not None:
                await self._session.close()


async def _settle(*futures: asyncio.Future[Any] | None) -> None:
    """Cancel ``futures`` and wait for them to end, their outcome retrieved."""
    live = [f for f in futures if f is not None]
    for f in live:
        f.cancel()
    if live:
        await asyncio.wait(live)
    for f in live:
        if not f.cancelled():
            f.exception()  # retrieved: a failure at shutdown is not worth a log line
