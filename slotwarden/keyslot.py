"""``slotwarden slot KEY...``: which slot, shard and master hold each key.

Asks the router's admin API first (``GET /slots?key=K...`` on ``router.admin``,
HTTPS with cluster.yaml ``tls.http``): that is the slot map in use, failovers
and migrations included. When the router does not answer within `TIMEOUT`, it
falls back to cluster.yaml's own layout (epoch 0) and says so, since after a
failover the master there may be stale. Every line says which source it is.

Exit codes: 0 answered (from either source), 1 a bad config (reported by the CLI).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any

from slotwarden.cluster.config import ClusterConfig
from slotwarden.cluster.slots import key_hash_slot
from slotwarden.cluster.tls import http_client_context, http_scheme

TIMEOUT = 2.0


def from_router(config: ClusterConfig, keys: Sequence[str]) -> dict[str, Any]:
    """The router's answer (``{"epoch", "keys"}``); raises OSError/ValueError if none."""
    admin = config.router.admin
    host = f"[{admin.host}]" if ":" in admin.host else admin.host
    query = urllib.parse.urlencode([("key", k) for k in keys])
    url = f"{http_scheme(config.tls)}://{host}:{admin.port}/slots?{query}"
    context = http_client_context(config.tls)
    with urllib.request.urlopen(url, timeout=TIMEOUT, context=context) as resp:
        data = json.loads(resp.read())
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise ValueError("unexpected answer")
    return data


def from_file(config: ClusterConfig, keys: Sequence[str]) -> dict[str, Any]:
    """The same rows from cluster.yaml's layout."""
    slotmap = config.slotmap(0)
    rows = []
    for key in keys:
        slot = key_hash_slot(key.encode("utf-8", "surrogateescape"))
        shard = slotmap.shards[slotmap.owner[slot]]
        rows.append({"key": key, "slot": slot, "shard": shard.name, "master": str(shard.master)})
    return {"epoch": slotmap.epoch, "keys": rows}


def lookup(config: ClusterConfig, keys: Sequence[str]) -> dict[str, Any]:
    """``{"source", "epoch", "keys"}``, from the router if it answers, else the file."""
    try:
        data = from_router(config, keys)
        return {"source": f"router {config.router.admin}", **data}
    except (OSError, ValueError) as exc:
        why = getattr(exc, "reason", None) or exc
        data = from_file(config, keys)
        note = f"cluster.yaml ({config.path}); the router at {config.router.admin} did not "
        note += f"answer ({why}): after a failover its master may differ"
        return {"source": note, **data}


def render(report: dict[str, Any]) -> str:
    lines = [f"from {report['source']}, topology epoch {report['epoch']}:"]
    rows = report["keys"]
    width = max((len(r["key"]) for r in rows), default=0)
    for r in rows:
        line = (
            f"  {r['key']:<{width}}  slot {r['slot']:>5}  shard {r['shard']}  master {r['master']}"
        )
        if r.get("migrating_from"):
            line += f"  (migrating from shard {r['migrating_from']})"
        lines.append(line)
    return "\n".join(lines)


def main(config: ClusterConfig, keys: Sequence[str], as_json: bool = False) -> int:
    report = lookup(config, keys)
    print(json.dumps(report, indent=2) if as_json else render(report))
    return 0
