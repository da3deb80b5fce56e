"""The sentinel's HTTP endpoint (aiohttp): votes, opinions, topology, status, events.

Owns the server side of the wire format that `sentinel.act.peers` speaks
(every JSON answer, `opinion_of` and `status_of` included), and the auth
rule: every path except ``GET /health`` and ``GET /metrics`` needs
``Authorization: Bearer <secret>`` (`slotwarden.cluster.secrets.authorized`,
constant time); without it the answer is 401 ``{"error": ...}``, nothing
changes and ``auth_failures_total`` counts it. Every query field and body
is parsed by `sentinel.http.validate`; bad input is a 400 ``{"error": reason}``
(one line), never a 500. Routes:

- ``GET /health`` - 200, or 503 while the run cycle is stalled (public).
- ``GET /topology?after=N&timeout=S&router=HOST:PORT`` - the topology at once
  if its epoch is above N, else when one is or at the timeout (held at most
  30 s); ``router=`` registers that router admin address for pushes.
- ``POST /topology`` - a topology from a peer; adopted if its epoch is higher.
  Answers ``{"applied": bool, "epoch": N}`` (the router's shape too). A newer
  one naming a node cluster.yaml does not list for that shard, or an epoch
  more than `slotwarden.cluster.trust.MAX_EPOCH_JUMP` above the highest this
  sentinel knows (`Sentinel.vet`), is a 400 and changes nothing.
- ``POST /vote`` ``{"epoch", "candidate"}`` - persisted before the answer; an
  epoch more than ``MAX_EPOCH_JUMP`` above `Sentinel.known_epoch` is a 400.
- ``POST /failover`` ``{"shard", "to", "force"}`` - a planned switchover, answered
  when done; ``"force": true`` (with ``to``) promotes ``to`` while the master is
  down even if it is not eligible (the refusal an operator overrides).
- ``GET /opinion`` - which nodes we hold down, our epochs (peers poll it).
- ``POST /reload`` - re-read cluster.yaml now (see `sentinel.run.reload`): 200
  ``{"applied": true, "changes"}`` or 422 ``{"applied": false, "problems"}``.
- ``GET /routers`` - ``{"routers": {"host:port": epoch or null}}``: the routers
  registered with us and the epoch each last reported (the movers' union).
- ``GET /status`` - everything we observe; ``GET /events`` - NDJSON stream.
- ``GET /metrics`` - Prometheus text (`sentinel.http.metrics`), public like /health.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from sentinel.decide.model import Event
from sentinel.errors import BadInput
from sentinel.http import metrics
from sentinel.http.validate import (
    MAX_EPOCH,
    json_object,
    one_line,
    query_float,
    query_int,
    topology_of,
)
from sentinel.run.loop import Sentinel
from slotwarden.cluster.secrets import authorized
from slotwarden.cluster.tls import http_server_context
from slotwarden.cluster.topology import Address
from slotwarden.cluster.trust import MAX_EPOCH_JUMP

log = logging.getLogger("sentinel.api")

PUBLIC = frozenset({("GET", "/health"), ("GET", "/metrics")})
SENTINEL_KEY = web.AppKey("sentinel", Sentinel)
REGISTRY_KEY = web.AppKey("registry", CollectorRegistry)
HttpHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def make_auth(
    sentinel: Sentinel,
) -> Callable[[web.Request, HttpHandler], Awaitable[web.StreamResponse]]:
    @web.middleware
    async def auth(request: web.Request, handler: HttpHandler) -> web.StreamResponse:
        if (request.method, request.path) not in PUBLIC:
            if not authorized(request.headers.get("Authorization"), sentinel.secret):
                sentinel.stats.auth_failures += 1
                return _error(401, "missing or wrong Authorization: Bearer secret")
        try:
            return await handler(request)
        except BadInput as exc:
            return _error(400, one_line(exc))

    return auth


def _sentinel(request: web.Request) -> Sentinel:
    return request.app[SENTINEL_KEY]


async def health(request: web.Request) -> web.Response:
    """200 ``{"ok": true, ...}``; 503 with ``"ok": false`` and the reason while the
    run cycle is stalled (`Sentinel.stalled_for`)."""
    s = _sentinel(request)
    body: dict[str, object] = {
        "ok": True,
        "id": s.me,
        "epoch": s.votes.epoch,
        "topology_epoch": s.topology.epoch,
    }
    stalled = s.stalled_for()
    if stalled is not None:
        body.update(ok=False, error=f"run cycle stalled: none completed for {stalled:.1f} s")
        return web.json_response(body, status=503)
    return web.json_response(body)


async def get_topology(request: web.Request) -> web.Response:
    s = _sentinel(request)
    q = request.query
    after = query_int(q, "after", -1, -1, MAX_EPOCH)
    # above MAX_LONG_POLL is allowed and held MAX_LONG_POLL (`Sentinel.wait_topology`)
    timeout = query_float(q, "timeout", 0.0, 0.0, 3600.0)
    try:
        router = Address.parse(q["router"]) if q.get("router") else None
    except ValueError as exc:
        return _error(400, f"bad query: {one_line(exc)}")
    if router is not None:
        s.register_router(router, after)
    await s.wait_topology(after, timeout)
    return web.Response(body=s.topology_json, content_type="application/json")


async def _body(request: web.Request) -> dict[str, object]:
    """The request body as a JSON object; `BadInput` (a 400) for anything else."""
    return json_object(await request.read())


async def post_topology(request: web.Request) -> web.Response:
    s = _sentinel(request)
    topology = topology_of(await _body(request))
    source = f"POST from {request.remote}"
    if topology.supersedes(s.topology):
        refused = s.vet(topology, source)
        if refused is not None:
            raise BadInput(f"bad topology: {refused}")
    applied = s.adopt(topology, source, check=False)
    return web.json_response({"applied": applied, "epoch": s.topology.epoch})


async def post_vote(request: web.Request) -> web.Response:
    s = _sentinel(request)
    data = await _body(request)
    epoch = data.get("epoch")
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 1:
        return _error(400, "epoch must be a positive integer")
    if epoch > MAX_EPOCH:
        return _error(400, f"epoch must be at most {MAX_EPOCH}")
    known = s.known_epoch()
    if epoch > known + MAX_EPOCH_JUMP:
        return _error(
            400, f"epoch {epoch} is more than {MAX_EPOCH_JUMP} above the current epoch {known}"
        )
    candidate = data.get("candidate")
    if not isinstance(candidate, str) or candidate not in s.all_ids:
        return _error(400, f"unknown candidate {one_line(repr(candidate))}")
    return web.json_response(s.on_vote_request(epoch, candidate))


async def post_failover(request: web.Request) -> web.Response:
    """A planned switchover: ``{"shard": NAME, "to": "host:port" or null, "force": bool}``.

    Answers when it is done: 200 ``{"ok": true, "epoch", "switched": [...]}``
    or 409 ``{"ok": false, "reason"}``.
    """
    s = _sentinel(request)
    data = await _body(request)
    shard, to, force = data.get("shard"), data.get("to"), data.get("force", False)
    if not isinstance(shard, str) or shard not in {x.name for x in s.topology.shards}:
        return _error(400, f"unknown shard {one_line(repr(shard))}")
    if to is not None and not isinstance(to, str):
        return _error(400, "to must be a host:port string or null")
    if not isinstance(force, bool):
        return _error(400, "force must be true or false")
    if force and not to:
        return _error(400, "force needs to: the replica to promote")
    try:
        target = Address.parse(to) if to else None
    except ValueError as exc:
        return _error(400, f"to: {one_line(exc)}")
    outcome = await s.leader.manual(shard, target, force=force)
    return web.json_response(outcome, status=200 if outcome.get("ok") else 409)


async def post_reload(request: web.Request) -> web.Response:
    s = _sentinel(request)
    if s.reloader is None:
        return _error(409, "the sentinel was not started from a file")
    applied, details = s.reloader.reload(f"POST /reload from {request.remote}")
    if not applied:
        return web.json_response({"applied": False, "problems": details}, status=422)
    return web.json_response({"applied": True, "changes": details})


async def get_metrics(request: web.Request) -> web.Response:
    body, content_type = metrics.render(request.app[REGISTRY_KEY])
    return web.Response(body=body, headers={"Content-Type": content_type})


def opinion_of(s: Sentinel) -> dict[str, Any]:
    """The answer to ``GET /opinion`` (peers poll it): which nodes we hold down, our epochs
    (``led_epoch``: the last we led to its end, `sentinel.run.leader.Leader.led_epoch`)."""
    return {
        "id": s.me,
        "epoch": s.votes.epoch,
        "topology_epoch": s.topology.epoch,
        "led_epoch": s.leader.led_epoch,
        "down": sorted(str(a) for a in s.flags.down),
    }


def status_of(s: Sentinel) -> dict[str, Any]:
    """The answer to ``GET /status``: our opinion, and everything we observe."""
    now = s.clock()
    nodes = {}
    for addr, p in sorted(s.probers.items()):
        o = p.obs
        nodes[str(addr)] = {
            "sdown": addr in s.flags.sdown,
            "role": o.role.value,
            "master": str(o.master) if o.master else None,
            "link_up": o.link_up,
            "never_synced": o.never_synced,
            "sync_in_progress": o.sync_in_progress,
            "offset": o.offset,
            "priority": o.priority,
            "last_ok_ms_ago": round((now - o.last_ok) * 1000),
            "error": p.last_error or None,
        }
    return {
        **opinion_of(s),
        "role": s.leader.role.value,
        "voted_epoch": s.votes.voted_epoch,
        "voted_for": s.votes.voted_for,
        "odown": sorted(s.flags.odown),
        "busy": sorted(s.leader.busy),
        "refused": dict(sorted(s.leader.refusals.current.items())),
        "reconfigure_pending": s.leader.reconfigure_pending,
        "redis_config": s.redisconf.status(),  # cluster.yaml redis: drift
        "nodes": nodes,
        "peers": {
            pid: {"age_ms": round((now - op.at) * 1000), "epoch": op.epoch}
            for pid, op in sorted(s.opinions.items())
        },
        "routers": {str(r): s.router_epochs.get(r) for r in s.routers},
        "topology": s.topology.to_dict(),
        "migrations": s.movers.status(),
    }


async def get_routers(request: web.Request) -> web.Response:
    return web.json_response({"routers": _sentinel(request).movers.local_routers()})


async def get_opinion(request: web.Request) -> web.Response:
    return web.json_response(opinion_of(_sentinel(request)))


async def get_status(request: web.Request) -> web.Response:
    return web.json_response(status_of(_sentinel(request)))


async def get_events(request: web.Request) -> web.StreamResponse:
    """Recent events, then live ones, one JSON object per line."""
    s = _sentinel(request)
    resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await resp.prepare(request)
    queue: asyncio.Queue[tuple[float, Event]] = asyncio.Queue(maxsize=1000)
    backlog = s.events.subscribe(queue)
    try:
        for item in backlog:
            await resp.write(_event_line(item))
        while True:
            item = await queue.get()
            await resp.write(_event_line(item))
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        s.events.unsubscribe(queue)
    return resp


def _event_line(item: tuple[float, Event]) -> bytes:
    at, event = item
    return (json.dumps({"at": at, **event.to_dict()}) + "\n").encode()


def make_app(sentinel: Sentinel) -> web.Application:
    app = web.Application(middlewares=[make_auth(sentinel)], client_max_size=1 << 20)
    app[SENTINEL_KEY] = sentinel
    app[REGISTRY_KEY] = metrics.make_registry(sentinel)
    app.router.add_get("/health", health)
    app.router.add_get("/topology", get_topology)
    app.router.add_post("/topology", post_topology)
    app.router.add_post("/vote", post_vote)
    app.router.add_post("/failover", post_failover)
    app.router.add_get("/opinion", get_opinion)
    app.router.add_get("/status", get_status)
    app.router.add_get("/routers", get_routers)
    app.router.add_get("/events", get_events)
    app.router.add_post("/reload", post_reload)
    app.router.add_get("/metrics", get_metrics)
    return app


async def serve(sentinel: Sentinel) -> None:
    """Serve the endpoint on the sentinel's listen address until cancelled."""
    runner = web.AppRunner(make_app(sentinel), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        ssl_context = http_server_context(sentinel.config.tls)  # HTTPS with tls.http
        site = web.TCPSite(
            runner,
            sentinel.listen.host,
            sentinel.listen.port,
            reuse_address=True,
            ssl_context=ssl_context,
        )
        await site.start()
        scheme = "https" if ssl_context is not None else "http"
        log.info("sentinel %s listening on %s://%s", sentinel.me, scheme, sentinel.listen)
        await asyncio.Event().wait()
    finally:
        with contextlib.suppress(Exception):
            await runner.cleanup()
