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

Every answer is parsed by `slotwarden.cluster.trust.parse_topology` (any
malformed body is one `TopologyRefused`) and vetted by `RouteTable.vet`: only
nodes cluster.yaml lists for their shard, and an epoch at most
`MAX_EPOCH_JUMP` above ours - unless a majority of the file's sentinels
answer with that epoch (`ask_all`), so a router that was away while the
sentinels' elections moved the epoch far ahead still catches up.

A router no sentinel has answered for `SILENT_S` (30 s) logs one WARNING (and
one line when one answers again) and reports ``sentinels_reachable:0`` in INFO
(`reachable`): the sentinels' mover waits for every registered router to run a
migration's epoch, and a router that does not hear of a migration keeps writing
its slots on the source (README *Resharding*).

Invariant: every map goes through `RouteTable.apply_topology`
(router.control.routes), which applies only a strictly higher epoch. On
shutdown the request in flight ends before the HTTP session closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl as _ssl
from typing import Any

import aiohttp

from router.control.routes import RouteTable
from slotwarden.cluster.secrets import bearer
from slotwarden.cluster.topology import Address, SlotMap
from slotwarden.cluster.trust import TopologyRefused, parse_topology

log = logging.getLogger("slotwarden.watch")

LONG_POLL_S = 20.0  # how long a sentinel may hold a watch request
ASK_TIMEOUT_S = 1.0  # a one-off question to one sentinel
RETRY_S = 0.5  # after every sentinel failed
SILENT_S = 30.0  # no sentinel answered for this long: warn (once), INFO sentinels_reachable:0


class TopologyWatcher:
    def __init__(
        self,
        routes: RouteTable,
        sentinels: list[Address],
        secret: str,
        admin: Address | None,
        ssl: _ssl.SSLContext | None = None,
    ) -> None:
        self.routes = routes
        self.sentinels = sentinels
        self.admin = admin  # this router's admin address, registered with the sentinels
        self.headers = bearer(secret)
        self._hint = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self.ssl = ssl  # HTTPS to the sentinels, verifying tls.ca_file (cluster.yaml tls.http)
        self.scheme = "https" if ssl is not None else "http"
        self.last_answer: float | None = None  # loop time of the last sentinel's answer
        self.silent = False  # the silence warning was logged (and no answer since)
        self._silence: asyncio.TimerHandle | None = None

    def reachable(self) -> bool:
        """True if a sentinel answered in the last `SILENT_S` seconds."""
        last = self.last_answer
        return last is not None and asyncio.get_running_loop().time() - last < SILENT_S

    def _answered(self) -> None:
        """A sentinel answered (a topology, applied or not): the silence clock restarts."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self.silent:
            self.silent = False
            if self.last_answer is None:
                log.info("a sentinel answered (the first since this router started)")
            else:
                log.info("a sentinel answered again after %.0f s", now - self.last_answer)
        self.last_answer = now
        self._arm(loop)

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._silence is not None:
            self._silence.cancel()
        self._silence = loop.call_later(SILENT_S, self._silent)

    def _silent(self) -> None:
        self._silence = None
        if not self.silent:
            self.silent = True
            log.warning(
                "no sentinel answered for %.0f s: migrations may wait for this router; its "
                "writes to slots that start moving meanwhile are at risk",
                SILENT_S,
            )

    def hint(self) -> None:
        """Something suggests the topology changed: ask the sentinels now."""
        self._hint.set()

    async def _get(self, sentinel: Address, after: int, wait: float) -> SlotMap | None:
        assert self._session is not None
        params = {"after": str(after), "timeout": str(wait)}
        if self.admin is not None:
            params["router"] = str(self.admin)
        host = f"[{sentinel.host}]" if ":" in sentinel.host else sentinel.host
        url = f"{self.scheme}://{host}:{sentinel.port}/topology"
        timeout = aiohttp.ClientTimeout(total=wait + ASK_TIMEOUT_S)
        async with self._session.get(
            url, params=params, headers=self.headers, timeout=timeout
        ) as resp:
            if resp.status != 200:
                raise aiohttp.ClientResponseError(
                    resp.request_info, (), status=resp.status, message=await resp.text()
                )
            try:
                data = await resp.json()
            except (ValueError, RecursionError) as exc:
                raise TopologyRefused(f"not JSON: {type(exc).__name__}") from None
            return parse_topology(data)  # raises TopologyRefused only

    def _take(self, slotmap: SlotMap, source: str, jump_ok: bool = False) -> bool | None:
        """Apply ``slotmap`` if `RouteTable.vet` passes it (cluster.yaml's nodes only, a
        bounded epoch jump unless ``jump_ok``): None if refused, else whether applied."""
        if self.routes.vet(slotmap, source, jump_ok=jump_ok) is not None:
            return None
        return self.routes.apply_topology(slotmap, source=source)

    async def ask_all(self) -> int:
        """Ask every sentinel at once; apply the highest epoch. Returns how many answered.

        An epoch more than `MAX_EPOCH_JUMP` above ours (say, failed elections while
        this router was away) is taken only if a majority of cluster.yaml's sentinels
        answered with it or a higher one: a single push cannot fake that."""
        epoch = self.routes.route.slotmap.epoch
        results = await asyncio.gather(
            *(self._get(s, epoch, 0.0) for s in self.sentinels), return_exceptions=True
        )
        maps = [r for r in results if isinstance(r, SlotMap)]
        if maps:
            self._answered()
        for sentinel, r in zip(self.sentinels, results, strict=True):
            if isinstance(r, TopologyRefused):
                log.warning("sentinel %s: bad topology: %s", sentinel, r)
        majority = len(self.sentinels) // 2 + 1
        for best in sorted(maps, key=lambda m: m.epoch, reverse=True):
            backed = sum(1 for m in maps if m.epoch >= best.epoch) >= majority
            if self._take(best, "sentinels", jump_ok=backed) is not None:
                break
        return len(maps)

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(ssl=self.ssl if self.ssl is not None else True)
        self._session = aiohttp.ClientSession(connector=connector)
        self._arm(asyncio.get_running_loop())  # silent from the start until one answers
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
                self._answered()
                if slotmap is not None and self._take(slotmap, f"sentinel {sentinel}") is None:
                    # refused: a big jump is taken if a majority of the sentinels has it;
                    # either way, do not ask again at once
                    await self.ask_all()
                    index += 1
                    await asyncio.sleep(RETRY_S)
        finally:
            # The long poll still open must end before the session closes under it
            # (else: "Task exception was never retrieved ... Connector is closed").
            if self._silence is not None:
                self._silence.cancel()
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
