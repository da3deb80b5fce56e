"""The admin endpoint of a router with workers: one ``router.admin`` over N worker processes.

The supervisor (router.control.supervisor) serves the routes of a single
router's admin API (router.control.admin) by asking its workers over their
unix sockets (router.control.workers):

- ``GET /metrics``: every worker's metrics merged (router.control.aggregate:
  counters and histograms summed, amount gauges summed, state gauges min/max),
  plus ``slotwarden_router_workers{state}`` and
  ``slotwarden_router_worker_restarts_total``;
- ``POST /topology`` and ``POST /reload``: sent to every running worker; the
  answer is the first refusal if one refused, else ``applied`` if any worker
  applied it and the lowest epoch among them. A request without the shared
  secret goes to one worker only (it answers 401/403 and counts it once);
- ``GET /ready``: 200 only when every worker is running and answers 200;
  the body adds ``workers_down`` (indices);
- ``GET /health``: the supervisor answers (``workers``: index, pid, ready, restarts);
- ``GET /``, ``/topology``, ``/slots``: the lowest-index worker that answers
  (every worker gets every update, so any one is the router's view).

The latest slot map (the highest epoch any worker answers ``GET /topology``
with, or the last push applied) is written to ``<run dir>/topology.json``
before a worker starts (`write_seed`), and a worker that became ready behind
it is sent it (`catch_up`).

Invariant: the supervisor changes no routing itself; every change goes to
the workers' own ``/topology`` and ``/reload`` and their rules.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from router.control.aggregate import MetricsMerger
from router.control.metrics import render, worker_families
from router.control.workers import TOPOLOGY_FILE, socket_path
from slotwarden.cluster.config import ClusterConfig
from slotwarden.cluster.secrets import authorized
from slotwarden.cluster.topology import Address

log = logging.getLogger("slotwarden.router")

CALL_TIMEOUT = 5.0  # seconds a worker has to answer the supervisor
Answer = tuple[int, bytes, str]  # status, body, content type


@dataclass(slots=True)
class WorkerSlot:
    index: int
    generation: int = -1  # starts so far - 1
    proc: asyncio.subprocess.Process | None = None
    ready: bool = False
    started: float = 0.0
    failures: int = 0  # deaths in a row, each within STABLE_AFTER of its start
    restarts: int = 0

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None


class WorkersAdmin:
    def __init__(
        self, slots: list[WorkerSlot], run_dir: str, secret: str | None, config: ClusterConfig
    ) -> None:
        self.slots = slots
        self.run_dir = run_dir
        self.secret = secret
        self.config = config
        self.public: Address | None = None  # the admin address, once bound
        self.restarts = 0  # workers started again after they died
        self.merger = MetricsMerger()
        self.latest: dict[str, object] | None = None  # the highest-epoch topology seen
        self._sessions: dict[int, aiohttp.ClientSession] = {}

    def _session(self, index: int) -> aiohttp.ClientSession:
        session = self._sessions.get(index)
        if session is None or session.closed:
            connector = aiohttp.UnixConnector(path=socket_path(self.run_dir, index))
            session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=CALL_TIMEOUT)
            )
            self._sessions[index] = session
        return session

    async def close(self) -> None:
        for session in self._sessions.values():
            await session.close()

    async def call(
        self,
        slot: WorkerSlot,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer | None:
        """One request to one worker; None if it does not answer."""
        try:
            async with self._session(slot.index).request(
                method, f"http://worker{path}", data=body, headers=headers
            ) as resp:
                data = await resp.read()
                return resp.status, data, resp.headers.get("Content-Type", "application/json")
        except (aiohttp.ClientError, TimeoutError, OSError):
            return None

    async def each(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> list[tuple[WorkerSlot, Answer]]:
        """The same request to every running worker at once; those that answered."""
        slots = [s for s in self.slots if s.running]
        answers = await asyncio.gather(*(self.call(s, method, path, body, headers) for s in slots))
        return [(s, a) for s, a in zip(slots, answers, strict=True) if a is not None]

    async def first(self, method: str, path: str, headers: dict[str, str] | None = None) -> Answer:
        for slot in self.slots:
            if slot.running:
                answer = await self.call(slot, method, path, headers=headers)
                if answer is not None:
                    return answer
        return (
            503,
            json.dumps({"error": "no router worker is running"}).encode(),
            "application/json",
        )

    # ------------------------------------------------------------ the latest topology

    def remember(self, topology: object) -> None:
        if isinstance(topology, dict) and isinstance(topology.get("epoch"), int):
            epoch = topology["epoch"]
            if self.latest is None or epoch > self.latest["epoch"]:  # type: ignore[operator]
                self.latest = topology

    async def write_seed(self) -> None:
        """Write the latest slot map the workers have for the next worker start."""
        for _, (status, body, _) in await self.each("GET", "/topology"):
            if status == 200:
                try:
                    self.remember(json.loads(body))
                except ValueError:
                    continue
        if self.latest is None:
            return
        path = os.path.join(self.run_dir, TOPOLOGY_FILE)
        with open(f"{path}.tmp", "w") as f:
            json.dump(self.latest, f)
        os.replace(f"{path}.tmp", path)

    async def catch_up(self, slot: WorkerSlot) -> None:
        """A worker that became ready behind the latest push is sent it."""
        if self.latest is None or not self.secret:
            return
        answer = await self.call(slot, "GET", "/topology")
        if answer is None or answer[0] != 200:
            return
        try:
            epoch = json.loads(answer[1]).get("epoch", 0)
        except ValueError:
            return
        if epoch < self.latest["epoch"]:  # type: ignore[operator]
            headers = {"Authorization": f"Bearer {self.secret}", "Content-Type": "application/json"}
            await self.call(slot, "POST", "/topology", json.dumps(self.latest).encode(), headers)

    # ------------------------------------------------------------ metrics

    def own_metrics(self) -> str:
        """The supervisor's families (router.control.metrics.worker_families), as text."""
        running = sum(1 for s in self.slots if s.running)
        families = worker_families(len(self.slots), running, self.restarts)

        class Own(Collector):
            def collect(self) -> Iterator[Metric]:
                yield from families

        registry = CollectorRegistry(auto_describe=False)
        registry.register(Own())
        return render(registry).decode()


WORKERS_KEY: web.AppKey[WorkersAdmin] = web.AppKey("workers")


def _w(request: web.Request) -> WorkersAdmin:
    return request.app[WORKERS_KEY]


def _reply(answer: Answer) -> web.Response:
    status, body, content_type = answer
    return web.Response(status=status, body=body, headers={"Content-Type": content_type})


async def health(request: web.Request) -> web.Response:
    admin = _w(request)
    workers = [
        {
            "index": s.index,
            "pid": s.proc.pid if s.running and s.proc is not None else None,
            "ready": s.ready,
            "restarts": s.restarts,
        }
        for s in admin.slots
    ]
    return web.json_response({"ok": True, "workers": workers})


async def ready(request: web.Request) -> web.Response:
    admin = _w(request)
    answers = dict((s.index, a) for s, a in await admin.each("GET", "/ready"))
    down: set[str] = set()
    epochs: list[int] = []
    for _status, body, _ in answers.values():
        try:
            data = json.loads(body)
        except ValueError:
            continue
        down.update(data.get("shards_down", []))
        epochs.append(int(data.get("epoch", 0)))
    workers_down = [s.index for s in admin.slots if s.index not in answers or not s.ready]
    ok = not workers_down and all(a[0] == 200 for a in answers.values())
    body = {
        "ready": ok,
        "epoch": min(epochs, default=0),
        "shards_down": sorted(down),
        "workers_down": workers_down,
    }
    return web.json_response(body, status=200 if ok else 503)


async def metrics(request: web.Request) -> web.Response:
    admin = _w(request)
    texts = [
        (s.index, s.generation, a[1].decode("utf-8", "replace"))
        for s, a in await admin.each("GET", "/metrics")
        if a[0] == 200
    ]
    body = admin.merger.merge(texts) + admin.own_metrics()
    return web.Response(body=body.encode(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def proxy(request: web.Request) -> web.Response:
    """GET /, /topology, /slots: as the first worker answers."""
    headers = {"Accept": request.headers.get("Accept", "*/*")}
    return _reply(await _w(request).first("GET", request.path_qs, headers))


async def change(request: web.Request) -> web.Response:
    """POST /topology, /reload: to every running worker (one, without the secret)."""
    admin = _w(request)
    body = await request.read()
    headers = {k: v for k, v in request.headers.items() if k in ("Authorization", "Content-Type")}
    if not admin.secret or not authorized(request.headers.get("Authorization"), admin.secret):
        return _reply(await admin.first("POST", request.path, headers))  # 401/403, counted once
    answers = await admin.each("POST", request.path, body, headers)
    if not answers:
        return _reply(await admin.first("POST", request.path, headers))
    for _, answer in answers:
        if answer[0] != 200:
            return _reply(answer)
    if request.path != "/topology":
        return _reply(answers[0][1])
    results = [json.loads(a[1]) for _, a in answers]
    applied = any(r.get("applied") for r in results)
    if applied:
        try:
            admin.remember(json.loads(body))
        except ValueError:
            pass
    epoch = min(int(r.get("epoch", 0)) for r in results)
    return web.json_response({"applied": applied, "epoch": epoch, "workers": len(answers)})


def make_workers_app(admin: WorkersAdmin) -> web.Application:
    app = web.Application(client_max_size=1 << 20)
    app[WORKERS_KEY] = admin
    app.router.add_get("/", proxy)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/ready", ready)
    app.router.add_get("/topology", proxy)
    app.router.add_get("/slots", proxy)
    app.router.add_post("/topology", change)
    app.router.add_post("/reload", change)
    return app
