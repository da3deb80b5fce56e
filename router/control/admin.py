"""The router's admin HTTP endpoint (aiohttp), bound to localhost by default.

Routes:

- ``GET /health`` - the process is alive (always 200 while serving).
- ``GET /metrics`` - Prometheus metrics (`router.control.metrics`), no secret needed.
- ``GET /ready`` - 200 when a topology is loaded and every master is
  connected, else 503 naming the shards that are not.
- ``GET /topology`` - the slot map in use (``SlotMap.to_dict``) and its epoch.
- ``GET /`` - a small index: version, cluster, epoch, shards up, a link to every
  endpoint (HTML; JSON when the request accepts ``application/json``).
- ``GET /slots`` - slot ranges -> shard -> master. ``GET /slots?key=K`` (the
  ``key`` field repeatable, at most `MAX_KEYS`): each key's slot, shard and master
  (and, for a slot that is migrating, the shard its keys are leaving).
- ``POST /topology`` - a new slot map from a sentinel; needs
  ``Authorization: Bearer <secret>`` (401 without it, nothing changes);
  applied only if its epoch is higher than the current one. Answers
  ``{"applied": bool, "epoch": N}``. A map naming a node cluster.yaml does
  not list for that shard, or an epoch more than
  `slotwarden.cluster.trust.MAX_EPOCH_JUMP` above the current one, is a 400
  (`RouteTable.vet`), logged once, nothing changes.
- ``POST /reload`` - re-read cluster.yaml now (same secret); 200 with the
  changes applied, or 422 with every problem (the running config stays).

Bad input is a 400 ``{"error": reason}`` with a one-line reason, never a 500:
a pushed body is parsed by `parse_topology_body` (a JSON object at any depth,
then `slotwarden.cluster.trust.parse_topology`: a well-formed topology, an
integer epoch in 0..2**63-1); ``GET /slots`` reads only its ``key`` fields;
the other routes read no query field or body.

Invariant: nothing here changes routing except through
`RouteTable.apply_topology` (router.control.routes), which enforces the
epoch rule, and `RouterReloader.reload`.
"""

from __future__ import annotations

import html
import json
import logging
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry

from router.control.metrics import RouterStats, render
from router.control.reload import RouterReloader
from router.control.routes import RouteTable
from slotwarden import __version__
from slotwarden.cluster.secrets import authorized
from slotwarden.cluster.slots import key_hash_slot
from slotwarden.cluster.topology import SlotMap
from slotwarden.cluster.trust import EpochJump, TopologyRefused, parse_topology

log = logging.getLogger("slotwarden.admin")

MAX_KEYS = 1000  # keys one GET /slots?key=... may ask about


def _one_line(text: object) -> str:
    """``text`` on one line, cut to 200 characters (reasons go back to the client)."""
    line = " ".join(str(text).split())
    return line if len(line) <= 200 else line[:197] + "..."


def parse_topology_body(raw: bytes) -> SlotMap | str:
    """A pushed topology body as a `SlotMap`, or the one-line reason it is refused."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        return f"bad topology: {_one_line(exc)}"
    except RecursionError:
        return "bad topology: body is nested too deeply"
    try:
        return parse_topology(data)
    except TopologyRefused as exc:
        return f"bad topology: {exc}"


@dataclass(frozen=True, slots=True)
class Admin:
    """What the endpoints read and act on."""

    routes: RouteTable
    reloader: RouterReloader | None  # None: the router was not started from a file
    stats: RouterStats
    registry: CollectorRegistry  # the router's metrics
    secret: str | None  # the shared secret changes need (None: changes are refused)


ADMIN_KEY: web.AppKey[Admin] = web.AppKey("admin")


def _admin(request: web.Request) -> Admin:
    return request.app[ADMIN_KEY]


async def health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def ready(request: web.Request) -> web.Response:
    route = _admin(request).routes.route
    down = [node.label for node in route.masters if not node.is_up()]
    body = {"ready": not down, "epoch": route.slotmap.epoch, "shards_down": down}
    return web.json_response(body, status=503 if down else 200)


async def get_topology(request: web.Request) -> web.Response:
    return web.json_response(_admin(request).routes.route.slotmap.to_dict())


async def get_slots(request: web.Request) -> web.Response:
    slotmap = _admin(request).routes.route.slotmap
    keys = request.query.getall("key", [])
    if keys:
        if len(keys) > MAX_KEYS:
            return web.json_response(
                {"error": f"at most {MAX_KEYS} key fields per request"}, status=400
            )
        return web.json_response(
            {"epoch": slotmap.epoch, "keys": [key_row(slotmap, k) for k in keys]}
        )
    rows = [
        {"slots": slotmap.ranges_of(i), "shard": s.name, "master": str(s.master)}
        for i, s in enumerate(slotmap.shards)
    ]
    return web.json_response({"epoch": slotmap.epoch, "slots": rows})


def key_row(slotmap: SlotMap, key: str) -> dict[str, object]:
    """Where ``key`` (its UTF-8 bytes) lives under ``slotmap``."""
    slot = key_hash_slot(key.encode("utf-8", "surrogateescape"))
    shard = slotmap.shards[slotmap.owner[slot]]
    row: dict[str, object] = {
        "key": key,
        "slot": slot,
        "shard": shard.name,
        "master": str(shard.master),
    }
    source = slotmap.source_of(slot)
    if source is not None:
        row["migrating_from"] = slotmap.shards[source].name
    return row


ENDPOINTS = (
    ("GET", "/health", "the process is alive"),
    ("GET", "/ready", "every master connected (503 naming those that are not)"),
    ("GET", "/metrics", "Prometheus metrics"),
    ("GET", "/topology", "the slot map in use"),
    ("GET", "/slots", "slot ranges, shard and master; ?key=K (repeatable): a key's slot"),
    ("POST", "/topology", "a new slot map (shared secret)"),
    ("POST", "/reload", "re-read cluster.yaml now (shared secret)"),
)


async def index(request: web.Request) -> web.Response:
    admin = _admin(request)
    route = admin.routes.route
    facts = {
        "version": __version__,
        "cluster": admin.routes.running.config.name,
        "epoch": route.slotmap.epoch,
        "shards": len(route.masters),
        "shards_up": sum(1 for node in route.masters if node.is_up()),
    }
    if "application/json" in request.headers.get("Accept", ""):
        paths = [{"method": m, "path": p, "what": w} for m, p, w in ENDPOINTS]
        return web.json_response({**facts, "endpoints": paths})
    items = "".join(
        f'<li>{m} <a href="{p}">{p}</a>: {html.escape(w)}</li>' if m == "GET"
        else f"<li>{m} {p}: {html.escape(w)}</li>"
        for m, p, w in ENDPOINTS
    )  # fmt: skip
    text = (
        f"<!doctype html><html><head><title>slotwarden router</title></head><body>"
        f"<h1>slotwarden router {html.escape(__version__)}</h1>"
        f"<p>cluster {html.escape(str(facts['cluster']))}, topology epoch {facts['epoch']}, "
        f"{facts['shards_up']} of {facts['shards']} shards up</p><ul>{items}</ul></body></html>"
    )
    return web.Response(text=text, content_type="text/html")


def _check_secret(request: web.Request, admin: Admin) -> web.Response | None:
    """None if the request carries the shared secret, else the response to send."""
    if not admin.secret:
        return web.json_response(
            {"error": "no shared secret configured on this router; changes are refused"},
            status=403,
        )
    if not authorized(request.headers.get("Authorization"), admin.secret):
        admin.stats.auth_failures["admin"] += 1
        return web.json_response(
            {"error": "missing or wrong Authorization: Bearer secret"}, status=401
        )
    return None


async def post_topology(request: web.Request) -> web.Response:
    admin = _admin(request)
    denied = _check_secret(request, admin)
    if denied is not None:
        return denied
    slotmap = parse_topology_body(await request.read())
    if isinstance(slotmap, str):
        return web.json_response({"error": slotmap}, status=400)
    routes = admin.routes
    source = f"push from {request.remote}"
    refused = routes.vet(slotmap, source, kind="push")
    if refused is not None:
        if isinstance(refused, EpochJump):
            routes.hint_topology()  # the sentinels may know better (a majority is trusted)
        return web.json_response({"error": f"bad topology: {refused}"}, status=400)
    applied = routes.apply_topology(slotmap, source=source, kind="push")
    return web.json_response({"applied": applied, "epoch": routes.route.slotmap.epoch})


async def post_reload(request: web.Request) -> web.Response:
    admin = _admin(request)
    denied = _check_secret(request, admin)
    if denied is not None:
        return denied
    if admin.reloader is None:
        return web.json_response({"error": "the router was not started from a file"}, status=409)
    applied, details = admin.reloader.reload(f"POST /reload from {request.remote}")
    if not applied:
        return web.json_response({"applied": False, "problems": details}, status=422)
    return web.json_response({"applied": True, "changes": details})


async def metrics(request: web.Request) -> web.Response:
    body = render(_admin(request).registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def make_app(admin: Admin) -> web.Application:
    app = web.Application(client_max_size=1 << 20)
    app[ADMIN_KEY] = admin
    app.router.add_get("/", index)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/ready", ready)
    app.router.add_get("/topology", get_topology)
    app.router.add_get("/slots", get_slots)
    app.router.add_post("/topology", post_topology)
    app.router.add_post("/reload", post_reload)
    return app
