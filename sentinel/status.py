"""``slotwarden status``: one look at the whole cluster, from the outside.

Owns the report: each shard's master and replicas (role, offset, lag) read
directly from the nodes, each sentinel's view and epochs (and any shard
whose failover it refuses), each router's epoch (its admin ``GET
/topology``). Every source has a short deadline and a source that does not
answer is shown as such, never an exception. The shard layout shown is the
newest topology any sentinel serves (else the config's, epoch 0).

The routers asked are cluster.yaml's and every router a sentinel registered;
each migration is shown with a progress bar (`sentinel.report`). The exit
code is `sentinel.report.verdict`'s: 0 healthy, 1 degraded, 2 unreachable
(3, usage and config errors, comes from `slotwarden.cli`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from typing import Any

from sentinel.act.peers import PeerClient, parse_topology
from sentinel.act.probe import connect, set_backend_auth
from sentinel.errors import SetupError
from sentinel.main import require_secret
from sentinel.report import (
    STATES,
    UNREACHABLE,
    detail_lines,
    migration_rows,
    progress_line,
    verdict,
)
from slotwarden.cluster.config import ClusterConfig
from slotwarden.cluster.topology import Address, SlotMap

TIMEOUT = 2.0  # per source, all in parallel: a false "down" now changes the exit code


async def _node(addr: Address) -> dict[str, Any]:
    client = connect(addr, TIMEOUT, "slotwarden-status")
    try:
        async with asyncio.timeout(TIMEOUT):
            info = await client.info("replication")
    except Exception as exc:
        return {"addr": str(addr), "up": False, "error": f"{type(exc).__name__}: {exc}"}
    finally:
        await client.aclose()
    role = info.get("role")
    out: dict[str, Any] = {"addr": str(addr), "up": True, "role": role}
    if role == "slave":
        out["role"] = "replica"
        out["master"] = f"{info.get('master_host')}:{info.get('master_port')}"
        out["link"] = info.get("master_link_status")
        out["offset"] = info.get("slave_repl_offset")
    else:
        out["offset"] = info.get("master_repl_offset")
        out["connected_replicas"] = info.get("connected_slaves")
    return out


async def gather(config: ClusterConfig, secret: str | None) -> dict[str, Any]:
    peers = config.sentinel.peers if config.sentinel else ()
    async with PeerClient(secret or "", config.tls) as client:
        path = "/status" if secret else "/health"
        views = await asyncio.gather(*(client.call("GET", p.listen, path, TIMEOUT) for p in peers))
        routers = known_routers(config.router.admin, views)
        router_views = await asyncio.gather(
            *(client.call("GET", r, "/topology", TIMEOUT) for r in routers)
        )
        router_ready = await asyncio.gather(
            *(client.call_any("GET", r, "/ready", TIMEOUT) for r in routers)
        )
    sentinels = []
    topology: SlotMap = config.slotmap(0)
    source = "cluster.yaml"
    for peer, view in zip(peers, views, strict=True):
        entry: dict[str, Any] = {"id": peer.id, "listen": str(peer.listen), "up": view is not None}
        if view is not None:
            entry.update({k: v for k, v in view.items() if k not in ("nodes", "topology")})
            entry["nodes"] = view.get("nodes")
            topo = parse_topology(view.get("topology")) if "topology" in view else None
            if topo is not None and topo.epoch > topology.epoch:
                topology, source = topo, f"sentinel {peer.id}"
        sentinels.append(entry)
    nodes: dict[str, dict[str, Any]] = {}
    addrs = [a for s in topology.shards for a in (s.master, *s.replicas)]
    for result in await asyncio.gather(*(_node(a) for a in addrs)):
        nodes[result["addr"]] = result
    shards = []
    for index, shard in enumerate(topology.shards):
        master = nodes[str(shard.master)]
        moff = master.get("offset") if master.get("role") == "master" else None
        members = []
        for addr in (shard.master, *shard.replicas):
            n = dict(nodes[str(addr)])
            n["expected"] = "master" if addr == shard.master else "replica"
            if isinstance(moff, int) and isinstance(n.get("offset"), int) and addr != shard.master:
                n["lag"] = moff - n["offset"]
            members.append(n)
        shards.append({"name": shard.name, "slots": topology.ranges_of(index), "nodes": members})
    routers_out = []
    for addr, view, ready in zip(routers, router_views, router_ready, strict=True):
        epoch = view.get("epoch") if isinstance(view, dict) else None
        routers_out.append(
            {
                "admin": str(addr),
                "up": view is not None,
                "epoch": epoch,
                "ready": bool(ready and ready.get("ready")),
                "shards_down": list(ready.get("shards_down", [])) if ready else [],
            }
        )
    reports = [(p.id, v.get("migrations")) for p, v in zip(peers, views, strict=True) if v]
    return {
        "topology_epoch": topology.epoch,
        "topology_source": source,
        "shards": shards,
        "sentinels": sentinels,
        "routers": routers_out,
        "migrations": migration_rows(topology.migrations, reports),
    }


def known_routers(configured: Address, views: list[Any]) -> list[Address]:
    """cluster.yaml's router, then every router a sentinel has registered."""
    out = [configured]
    for view in views:
        for text in (view or {}).get("routers") or {}:
            with contextlib.suppress(ValueError):
                addr = Address.parse(text)
                if addr not in out:
                    out.append(addr)
    return out


def render_report(report: dict[str, Any]) -> str:
    if report.get("health", {}).get("code") == UNREACHABLE:
        return f"cluster UNREACHABLE: {'; '.join(report['health']['problems'])}"
    lines = [f"topology epoch {report['topology_epoch']} (from {report['topology_source']})"]
    for shard in report["shards"]:
        lines.append(f"shard {shard['name']} (slots {shard['slots'] or 'none'})")
        for n in shard["nodes"]:
            if not n["up"]:
                lines.append(f"  {n['expected']:<7} {n['addr']}  DOWN ({n['error']})")
                continue
            text = f"  {n['expected']:<7} {n['addr']}  role {n['role']}"
            if n["role"] == "replica":
                text += f" of {n['master']} link {n['link']}"
            text += f" offset {n.get('offset')}"
            if "lag" in n:
                text += f" lag {n['lag']}"
            if n["role"] != n["expected"]:
                text += "  (role differs from the topology)"
            lines.append(text)
    lines.append("sentinels")
    for s in report["sentinels"]:
        if not s["up"]:
            lines.append(f"  {s['id']} {s['listen']}  not answering")
            continue
        text = f"  {s['id']} {s['listen']}  epoch {s['epoch']} topology epoch {s['topology_epoch']}"
        if "role" in s:
            down = ", ".join(s.get("down") or []) or "none"
            voted = (
                f"voted for {s['voted_for']} in epoch {s.get('voted_epoch')}"
                if s.get("voted_for")
                else "has not voted yet"
            )
            text += f"  {s['role']}, {voted}, nodes it holds down: {down}"
        lines.append(text)
        for shard, reason in (s.get("refused") or {}).items():
            lines.append(f"    FAILOVER REFUSED for shard {shard}: {reason}")
    lines.append("routers")
    for r in report["routers"]:
        if not r["up"]:
            state = "not answering"
        elif r["ready"]:
            state = f"epoch {r['epoch']}, ready"
        else:
            state = f"epoch {r['epoch']}, NOT ready (shards down: {', '.join(r['shards_down'])})"
        lines.append(f"  {r['admin']}  {state}")
    if report["migrations"]:
        lines.append("migrations")
        for m in report["migrations"]:
            lines.append(f"  {progress_line(m)}")
            lines.extend(f"    {d}" for d in detail_lines(m))
    health = report.get("health")
    if health:
        lines.append(f"cluster {health['state'].upper()} (exit code {health['code']})")
        lines.extend(f"  - {p}" for p in health["problems"])
    return "\n".join(lines)


def main(config: ClusterConfig, as_json: bool = False) -> int:
    set_backend_auth(config)
    try:
        secret: str | None = require_secret(config) if config.sentinel else None
    except SetupError:
        secret = None
    report = asyncio.run(gather(config, secret))
    if secret is None and config.sentinel:
        report["note"] = "no secret available: sentinel views limited to /health"
    code, problems = verdict(report, config.sentinel is not None)
    report["health"] = {"code": code, "state": STATES[code], "problems": problems}
    print(json.dumps(report, indent=2) if as_json else render_report(report))
    if not as_json and "note" in report:
        print(f"note: {report['note']}", file=sys.stderr)
    return code
