"""Which Redis settings each node should run with, and which sentinel applies them.

Pure decisions for `sentinel.act.redisconf`: `wanted` (every node of every shard
of the current topology, promoted and added nodes included, and the nodes of
cluster.yaml's shards not in it yet, with the settings
of cluster.yaml's ``redis:`` blocks for its shard: `slotwarden.cluster.redisconf`),
`differences` (the keys a node reports otherwise than wanted) and `is_applier`
(only one sentinel sends CONFIG SET: the lowest id among those this one sees
alive, so sentinels whose cluster.yaml copies differ for a while never undo
each other's settings; the others only report drift). `Drift` is one entry of
``GET /status`` ``"redis_config": {"drift": [...]}``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sentinel.decide.model import PeerOpinion
from slotwarden.cluster.config import ClusterConfig
from slotwarden.cluster.redisconf import same, settings_for
from slotwarden.cluster.topology import Address, SlotMap

# A peer heard from within this is alive for the choice of the applier: longer than
# topology_confirmed's 3 s, so a slow answer or two (a loaded host) never makes a
# second applier; a dead lowest id is replaced this much later.
PEER_FRESH_S = 10.0


@dataclass(frozen=True, slots=True)
class NodeWant:
    addr: Address
    shard: str
    settings: Mapping[str, str]  # name -> value as Redis reports it


@dataclass(frozen=True, slots=True)
class Drift:
    """A node that runs ``key`` otherwise than cluster.yaml says (``have`` None: unread)."""

    node: str
    shard: str
    key: str
    want: str
    have: str | None
    error: str | None = None  # why it could not be read or set, if it could not

    def to_dict(self) -> dict[str, str | None]:
        out: dict[str, str | None] = {
            "node": self.node, "shard": self.shard, "key": self.key,
            "want": self.want, "have": self.have,
        }  # fmt: skip
        if self.error is not None:
            out["error"] = self.error
        return out


def wanted(config: ClusterConfig, topology: SlotMap) -> list[NodeWant]:
    """Every node of the topology whose shard has settings, with them (the topology's
    order: master first), then the nodes cluster.yaml lists that the topology does not
    yet (an added shard, before the edit is published: it has its settings by the time
    a migration checks its room)."""
    out: list[NodeWant] = []
    seen: set[Address] = set()
    for shard in (*topology.shards, *(s.to_shard() for s in config.shards)):
        settings = settings_for(config, shard.name)
        for addr in (shard.master, *shard.replicas):
            if settings and addr not in seen:
                out.append(NodeWant(addr, shard.name, settings))
            seen.add(addr)
    return out


def differences(settings: Mapping[str, str], have: Mapping[str, str | None]) -> list[str]:
    """The keys of ``settings`` the node reports otherwise (or not at all), in order."""
    return [
        key
        for key, want in settings.items()
        if have.get(key) is None or not same(key, want, have[key] or "")
    ]


def is_applier(me: str, opinions: Iterable[PeerOpinion], now: float) -> bool:
    """Whether ``me`` has the lowest id among the sentinels it sees alive (itself and the
    peers heard from within `PEER_FRESH_S`)."""
    alive = [op.peer for op in opinions if now - op.at <= PEER_FRESH_S]
    return all(me < other for other in alive if other != me)


def drift_lines(sentinels: Iterable[Mapping[str, object]]) -> list[str]:
    """``slotwarden status`` lines for the drift the sentinels report (their ``GET /status``
    ``"redis_config"``), one per node and key, naming who saw it; none without drift."""
    seen: dict[tuple[str, str], tuple[Mapping[str, object], list[str]]] = {}
    for view in sentinels:
        section = view.get("redis_config")
        drift = section.get("drift") if isinstance(section, Mapping) else None
        for entry in drift if isinstance(drift, list) else ():
            if isinstance(entry, Mapping):
                key = (str(entry.get("node")), str(entry.get("key")))
                seen.setdefault(key, (entry, []))[1].append(str(view.get("id")))
    if not seen:
        return []
    lines = ["redis config DRIFT (nodes that differ from cluster.yaml's redis: blocks)"]
    for (node, key), (entry, by) in sorted(seen.items()):
        text = (
            f"  {node} (shard {entry.get('shard')}) {key}: want {entry.get('want')}, "
            f"have {entry.get('have')}"
        )
        if entry.get("error"):
            text += f" ({entry['error']})"
        lines.append(f"{text}  [seen by {', '.join(by)}]")
    return lines
