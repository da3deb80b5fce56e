"""Frozen snapshot types shared by the sentinel's pure decision modules.

Owns the vocabulary: what a probe observed about one Redis node (`NodeObs`,
its `NodeRole`, a master's data lost by a `Restart`), what a peer sentinel
said (`PeerOpinion`), the timings the decisions use (`Timing`), what one
cycle looks at (`Snapshot`), the actions the decisions return for
`sentinel.run` to perform, and the `Event` each transition is logged as.
Invariant: everything here is immutable plain data; times are seconds on
the caller's monotonic clock (tests pass a fake one). No I/O, no asyncio.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from slotwarden.cluster.topology import Address, SlotMap


class NodeRole(Enum):
    MASTER = "master"
    REPLICA = "replica"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Restart:
    """What a master held before it came back with less: a master's replication offset
    never goes down, so a lower one means it restarted (usually with a new replication
    ID) and
    lost (some of) its data - e.g. no persistence, restarted by systemd or Kubernetes
    before a failover. Kept by the probe (`sentinel.act.probe.parse_replication`) while
    the node stays master; the rules of `sentinel.decide.eligible` judge the replicas
    against it, not against the emptied master's new stream."""

    at: float  # when the probe first saw it
    replid: str  # the replication ID it had before
    offset: int  # its offset at its last reply before the restart
    last_ok: float  # that last reply
    offsets: tuple[tuple[float, int], ...] = ()  # its offset history before the restart


@dataclass(frozen=True, slots=True)
class NodeObs:
    """What the probes know about one node at snapshot time.

    ``last_ok`` is when the node last gave a valid reply (or when watching
    started, if it never has); a hung node keeps an old ``last_ok`` even
    though its socket is open. The replication fields come from the last
    valid INFO replication and are meaningless when ``role`` is UNKNOWN.
    """

    addr: Address
    last_ok: float
    role: NodeRole = NodeRole.UNKNOWN
    master: Address | None = None  # for a replica: whom it replicates from
    link_up: bool = False  # replica: master_link_status:up
    link_down_s: float = 0.0  # replica: master_link_down_since_seconds (-1 -> 0, see never_synced)
    never_synced: bool = False  # replica: link down since "ever" (-1): no sync completed
    sync_in_progress: bool = False  # replica: master_sync_in_progress:1
    offset: int = 0  # replica: slave_repl_offset; master: master_repl_offset
    priority: int = 100  # replica-priority (INFO: slave_priority); 0 = never promote
    info_at: float | None = None  # when the replication fields were read
    role_since: float | None = None  # since when `role`/`master` have been reported unchanged
    # (when, offset) samples, oldest first, thinned; kept `Timing.replica_lag` back (eligible.py)
    offsets: tuple[tuple[float, int], ...] = ()
    replid: str = ""  # INFO master_replid: the replication stream the node holds
    restart: Restart | None = None  # a master seen coming back with less (see `Restart`)


@dataclass(frozen=True, slots=True)
class PeerOpinion:
    """The latest answer of one peer sentinel, stamped with our receive time."""

    peer: str
    at: float
    down: frozenset[Address] = frozenset()  # nodes the peer holds subjectively down
    epoch: int = 0  # the peer's current (election) epoch
    topology_epoch: int = 0
    led_epoch: int = 0  # the last epoch the peer led to its end (`election.term_ended`)


@dataclass(frozen=True, slots=True)
class Timing:
    """The sentinel's timings, in seconds (cluster.yaml has milliseconds)."""

    down_after: float
    probe_interval: float
    failover_timeout: float
    max_replica_lag: float | None = None  # sentinel.max_replica_lag_ms; None: 10 x down_after

    @classmethod
    def from_ms(
        cls,
        down_after_ms: int,
        probe_interval_ms: int,
        failover_timeout_ms: int,
        max_replica_lag_ms: int | None = None,
    ) -> Timing:
        lag = None if max_replica_lag_ms is None else max_replica_lag_ms / 1000
        return cls(down_after_ms / 1000, probe_interval_ms / 1000, failover_timeout_ms / 1000, lag)

    @property
    def replica_lag(self) -> float:
        """How far behind its master a replica may be and still be promoted: its link
        down no longer than the master has been down plus this, and its offset at
        least what the master had this long before its last reply."""
        return 10 * self.down_after if self.max_replica_lag is None else self.max_replica_lag

    @property
    def opinion_max_age(self) -> float:
        """A peer's answer older than this does not count toward ODOWN."""
        return max(5 * self.probe_interval, 0.5)

    @property
    def info_max_age(self) -> float:
        """Replication info older than this makes a replica "stale" (not promotable)."""
        return max(5 * self.probe_interval, self.down_after)

    @property
    def step_timeout(self) -> float:
        """Deadline of one failover step (promote, verify, repoint, publish)."""
        return max(self.failover_timeout / 4, 4 * self.probe_interval)

    @property
    def convert_wait(self) -> float:
        """A node in the wrong role is repointed only after reporting it this long."""
        return max(4 * self.probe_interval, 0.4)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything one decision cycle looks at."""

    now: float
    me: str
    topology: SlotMap
    nodes: dict[Address, NodeObs] = field(default_factory=dict)
    opinions: dict[str, PeerOpinion] = field(default_factory=dict)
    topology_at: float = float("-inf")  # when this sentinel adopted `topology` (its epoch)


# -- actions: returned by the pure modules, performed by loop/actuator ---------


@dataclass(frozen=True, slots=True)
class Promote:
    addr: Address  # REPLICAOF NO ONE


@dataclass(frozen=True, slots=True)
class PauseWrites:
    addr: Address  # CLIENT PAUSE ms WRITE: hold every client's writes (auto-ends after ms)
    ms: int


@dataclass(frozen=True, slots=True)
class CheckCaughtUp:
    master: Address  # succeeds when replica's processed offset >= master's offset
    replica: Address


@dataclass(frozen=True, slots=True)
class CheckRole:
    addr: Address  # ROLE; succeeds when the node answers "master"


@dataclass(frozen=True, slots=True)
class Repoint:
    addr: Address
    master: Address  # REPLICAOF master.host master.port


@dataclass(frozen=True, slots=True)
class Publish:
    topology: SlotMap


@dataclass(frozen=True, slots=True)
class Abort:
    reason: str
    refused: bool = False  # no replica is eligible: the shard stays down (failover-refused)


@dataclass(frozen=True, slots=True)
class Done:
    topology: SlotMap


Action = Promote | PauseWrites | CheckCaughtUp | CheckRole | Repoint | Publish | Abort | Done


@dataclass(frozen=True, slots=True)
class Event:
    """One transition, logged as one sentence and streamed on ``GET /events``."""

    kind: str  # sdown, sdown-cleared, odown, odown-cleared, new-epoch, vote, elected, ...
    text: str  # the full sentence: shard, addresses, epoch
    shard: str | None = None
    addr: str | None = None
    epoch: int | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "text": self.text,
            "shard": self.shard,
            "addr": self.addr,
            "epoch": self.epoch,
        }
