"""The router's admin HTTP endpoint (aiohttp), bound to localhost by default.

Routes:

- ``GET /health`` - the process is alive (always 200 while serving).
- ``GET /metrics`` - Prometheus metrics (`router.metrics`), no secret needed.
- ``GET /ready`` - 200 when a topology is loaded and every master is
  connected, else 503 naming the shards that are not.
- ``GET /topology`` - the slot map in use (``SlotMap.to_dict``) and its epoch.
- ``GET /slots`` - slot ranges -> shard -> master.
- ``POST /topology`` - a new slot map from a sentinel; needs
  ``Authorization: Bearer <secret>`` (401 without it, nothing changes);
  applied only if its epoch is higher than the current one. Answers
  ``{"applied": bool, "epoch": N}``.
- ``POST /reload`` - re-read cluster.yaml now (same secret); 200 with the
  changes applied, or 422 with every problem (the running config stays).

Invariant: nothing here changes routing except through
`Router.apply_topology`, which enforces the epoch rule.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from router.metrics import render
from slotwarden.cluster.secrets import authorized
from slotwarden.cluster.topology import SlotMap

if TYPE_CHECKING:
    from router.server import Router

log = logging.getLogger("slotwarden.admin")
ROUTER_KEY: web.AppKey[Router] = web.AppKey("router")


def _router(request: web.Request) -> Router:
    return request.app[ROUTER_KEY]


async def health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def ready(request: web.Request) -> web.Response:
    router = _router(request)
    route = router.route
    down = [node.label for node in route.masters if not node.is_up()]
    body = {"ready": not down, "epoch": route.slotmap.epoch, "shards_down": down}
    return web.json_response(body, status=503 if down else 200)


async def get_topology(request: web.Request) -> web.Response:
    return web.json_response(_router(request).route.slotmap.to_dict())


async def get_slots(request: web.Request) -> web.Response:
    slotmap = _router(request).route.slotmap
    rows = [
        {"slots": slotmap.ranges_of(i), "shard": s.name, "master": str(s.master)}
        for i, s in enumerate(slotmap.shards)
    ]
    return web.json_response({"epoch": slotmap.epoch, "slots": rows})


def _check_secret(request: web.Request, router: Router) -> web.Response | None:
    """None if the request carries the shared secret, else the response to send."""
    if not router.secret:
        return web.json_response(
            {"error": "no shared secret configured on this router; changes are refused"},
            status=403,
        )
    if not authorized(request.headers.get("Authorization"), router.secret):
        router.stats.auth_failures["admin"] += 1
        return web.json_response(
            {"error": "missing or wrong Authorization: Bearer secret"}, status=401
        )
    return None


async def post_topology(request: web.Request) -> web.Response:
    router = _router(request)
    denied = _check_secret(request, router)
    if denied is not None:
        return denied
    try:
        slotmap = SlotMap.from_dict(await request.json())
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        return web.json_response({"error": f"bad topology: {exc}"}, status=400)
    applied = router.apply_topology(slotmap, source=f"push from {request.remote}", kind="push")
    return web.json_response({"applied": applied, "epoch": router.route.slotmap.epoch})


async def post_reload(request: web.Request) -> web.Response:
    router = _router(request)
    denied = _check_secret(request, router)
    if denied is not None:
        return denied
    if router.reloader is None:
        return web.json_response({"error": "the router was not started from a file"}, status=409)
    applied, details = router.reloader.reload(f"POST /reload from {request.remote}")
    if not applied:
        return web.json_response({"applied": False, "problems": details}, status=422)
    return web.json_response({"applied": True, "changes": details})


async def metrics(request: web.Request) -> web.Response:
    body = render(_router(request).registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def make_app(router: Router) -> web.Application:
    app = web.Application(client_max_size=1 << 20)
    app[ROUTER_KEY] = router
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/ready", ready)
    app.router.add_get("/topology", get_topology)
    app.router.add_get("/slots", get_slots)
    app.router.add_post("/topology", post_topology)
    app.router.add_post("/reload", post_reload)
    return app
