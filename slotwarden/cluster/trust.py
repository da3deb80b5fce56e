"""What a topology from outside may say: a well-formed map, cluster.yaml's nodes, a bounded epoch.

Owns the rules every topology intake applies - the router's ``POST /topology``
and what it pulls from the sentinels, a sentinel's ``POST /topology`` and
what it takes from its peers - so router and sentinels agree (issue 10,
item 7):

- `parse_topology`: a JSON object in `SlotMap.to_dict`'s shape with an
  integer epoch in ``0..MAX_EPOCH`` (not a bool, float or string); anything
  else, whatever Python raises on it, is one `TopologyRefused`.
- `check_nodes`: every shard the map names is a shard of cluster.yaml, and
  every node it names for it (master and replicas) is listed there for that
  shard (``shards[].master`` or ``shards[].replicas``). Sentinels never learn
  nodes from ``INFO replication``: they watch, promote and publish only the
  nodes of their topology, and `restrict` drops from what a leader publishes
  any replica the file no longer lists (a sentinel never promotes one), so a
  topology published by sentinels that share the router's cluster.yaml is
  never refused. One exception (online resharding): a shard removed from
  cluster.yaml that is still *draining* - it owns no slot in the map and is
  the source of one of its migrations - is accepted when every node named for
  it is one the receiver's current map (``known``) already names for that
  shard: those nodes were listed when the receiver took them, the sentinels
  keep publishing them until the drain ends, and no new node comes in that way.
- `check_epoch`: at most `MAX_EPOCH_JUMP` above the epoch the receiver
  knows; a larger jump is refused (a caller may accept one that a majority
  of cluster.yaml's sentinels corroborate, see router.control.watch).

Pure: no I/O. Each refusal is a one-line reason (``shard a: node
10.0.0.9:6379 is not in cluster.yaml``) for a 400 answer and one log line.
"""

from __future__ import annotations

from slotwarden.cluster.config import ClusterConfig
from slotwarden.cluster.errors import ClusterError
from slotwarden.cluster.topology import Address, Shard, SlotMap

MAX_EPOCH = (1 << 63) - 1  # epochs are signed 64-bit numbers everywhere
# The most a topology's epoch may exceed the epoch its receiver knows. A real
# failover moves it by one per election round; a push of 2**62 would make the
# receiver ignore every real failover after it.
MAX_EPOCH_JUMP = 1000


class TopologyRefused(ClusterError):
    """A topology an intake must not take; ``str()`` is the one-line reason."""


class EpochJump(TopologyRefused):
    """Refused only for its epoch's jump (`check_epoch`); the same map may be taken
    once a majority of the sentinels corroborates it."""


def _one_line(text: object) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= 200 else line[:197] + "..."


def parse_topology(data: object) -> SlotMap:
    """``data`` (decoded JSON) as a `SlotMap`; raises `TopologyRefused` and nothing else."""
    if not isinstance(data, dict):
        raise TopologyRefused("body must be a JSON object")
    epoch = data.get("epoch")
    if not isinstance(epoch, int) or isinstance(epoch, bool) or not 0 <= epoch <= MAX_EPOCH:
        raise TopologyRefused(f"epoch must be an integer between 0 and {MAX_EPOCH}")
    shards = data.get("shards")
    if not isinstance(shards, list) or not all(isinstance(x, dict) for x in shards):
        raise TopologyRefused("shards must be a list of objects")
    try:
        return SlotMap.from_dict(data)
    except KeyError as exc:
        raise TopologyRefused(f"missing field {_one_line(exc)}") from None
    except OverflowError:
        raise TopologyRefused("too many shards") from None
    except (ValueError, TypeError, AttributeError, RecursionError) as exc:
        raise TopologyRefused(_one_line(exc)) from None


def listed(config: ClusterConfig) -> dict[str, frozenset[Address]]:
    """Shard name -> the nodes cluster.yaml lists for it (master and replicas)."""
    return {s.name: frozenset((s.master, *s.replicas)) for s in config.shards}


def check_nodes(slotmap: SlotMap, config: ClusterConfig, known: SlotMap | None = None) -> None:
    """Raise `TopologyRefused` unless every node ``slotmap`` names is listed for its shard
    (or, for a draining shard cluster.yaml no longer has, named for it in ``known``)."""
    nodes = listed(config)
    for index, shard in enumerate(slotmap.shards):
        allowed = nodes.get(shard.name)
        if allowed is None:
            allowed = draining_known(slotmap, index, known)
        if allowed is None:
            raise TopologyRefused(f"shard {_one_line(shard.name)} is not in cluster.yaml")
        for node in (shard.master, *shard.replicas):
            if node not in allowed:
                raise TopologyRefused(
                    f"shard {shard.name}: node {_one_line(node)} is not in cluster.yaml"
                )


def draining_known(
    slotmap: SlotMap, index: int, known: SlotMap | None
) -> frozenset[Address] | None:
    """The nodes ``known`` names for shard ``index`` of ``slotmap`` if that shard is
    draining (no slot, the source of a migration) and ``known`` has it; else None."""
    if known is None:
        return None
    name = slotmap.shards[index].name
    if bytes([index]) in slotmap.owner or not any(m.source == name for m in slotmap.migrations):
        return None
    for shard in known.shards:
        if shard.name == name:
            return frozenset((shard.master, *shard.replicas))
    return None


def check_epoch(epoch: int, known: int) -> None:
    """Raise `TopologyRefused` if ``epoch`` is more than `MAX_EPOCH_JUMP` above ``known``."""
    if epoch > known + MAX_EPOCH_JUMP:
        raise EpochJump(
            f"epoch {epoch} is more than {MAX_EPOCH_JUMP} above the current epoch {known}"
        )


def is_listed(config: ClusterConfig, shard: str, addr: Address) -> bool:
    """True if cluster.yaml lists ``addr`` as a node of ``shard``."""
    return addr in listed(config).get(shard, frozenset())


def restrict(slotmap: SlotMap, config: ClusterConfig) -> SlotMap:
    """``slotmap`` without the replicas cluster.yaml does not list for their shard
    (masters are kept: a sentinel publishes the master it has; a draining shard the
    file no longer lists keeps the nodes it has, vetted by `check_nodes`)."""
    nodes = listed(config)
    shards = tuple(
        Shard(
            s.name,
            s.master,
            tuple(r for r in s.replicas if s.name not in nodes or r in nodes[s.name]),
        )
        for s in slotmap.shards
    )
    if shards == slotmap.shards:
        return slotmap
    return slotmap.derive(shards=shards)
