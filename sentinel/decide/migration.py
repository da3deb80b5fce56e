"""The background mover's decisions, pure: who moves, how fast, in what batches, how far.

Owns what `sentinel.act.mover` needs to decide without I/O (README
*Resharding*):

- `mover_of`: which sentinel runs the movers - the lowest id among those
  this one sees alive (itself, and the peers whose opinion is fresh).
- `TokenBucket`: ``sentinel.migration.keys_per_second`` as arithmetic on a
  clock the caller passes (0: unlimited); a request larger than the burst
  is granted as a debt the next requests wait off, so over any span of ``t``
  seconds at most ``burst + rate * t`` keys go.
- `split`: the keys of one SCAN page, sized by ``MEMORY USAGE``, into MIGRATE
  batches of at most ``batch_keys`` small keys and the big keys (above
  ``big_key_bytes``) that move one by one in chunks.
- `wanted`: which scanned keys belong to the migration (their slot migrates;
  not one of the project's own ``__slotwarden:`` keys); `near_bound`: when a
  sampled size must be measured exactly before classing the key.
- `routers_behind`: which routers have not yet reported the migration's epoch.
- `Progress`: keys total/moved/left, bytes, big keys, errors, the rate over
  a sliding window and the ETA; `Progress.to_status` is one entry of
  ``GET /status`` ``"migrations"`` (the contract in the common design).
- `Throttle`: an event at most once per interval (``[migrate-error]``).

Invariant: nothing here awaits, sleeps or touches the network; times are
seconds on the caller's clock.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from slotwarden.cluster.slots import key_hash_slot
from slotwarden.cluster.topology import Migration

OWN_PREFIX = b"__slotwarden:"  # the project's own keys: never moved, never counted
LOCK_PREFIX = b"__slotwarden:lock:"
TMP_PREFIX = b"__slotwarden:tmp:"
FENCE_CHANNEL = b"__slotwarden:fence"
RATE_WINDOW = 10.0  # seconds of history behind `Progress.rate`
STATES = ("waiting-routers", "starting", "counting", "moving", "finishing", "blocked")


def mover_of(me: str, fresh_peers: Iterable[str]) -> str:
    """The id of the sentinel that moves keys: the lowest among ``me`` and the peers
    seen alive (their opinion is fresh). Two sentinels that see different alive sets
    may both think they are it: harmless (MIGRATE is atomic per key, locks are NX)."""
    return min([me, *fresh_peers])


def lock_key(key: bytes) -> bytes:
    """The big-key lock of ``key``, set on the source: ``__slotwarden:lock:<key>``."""
    return LOCK_PREFIX + key


def tmp_key(holder: bytes, key: bytes) -> bytes:
    """Where a big key is assembled on the target before its RENAMENX."""
    return TMP_PREFIX + holder + b":" + key


def wanted(keys: Iterable[bytes], slots: set[int] | frozenset[int]) -> list[bytes]:
    """The keys of a SCAN page that the migration moves: a migrating slot, not ours."""
    return [k for k in keys if not k.startswith(OWN_PREFIX) and key_hash_slot(k) in slots]


@dataclass(frozen=True, slots=True)
class Split:
    batches: tuple[tuple[bytes, ...], ...]  # small keys, at most batch_keys per MIGRATE
    big: tuple[bytes, ...]  # above big_key_bytes: moved in chunks, one at a time
    gone: int  # keys that were no longer there (MEMORY USAGE answered nil)


def split(sized: Sequence[tuple[bytes, int | None]], batch_keys: int, big_key_bytes: int) -> Split:
    """``sized``: (key, MEMORY USAGE or None when the key is gone), in SCAN order."""
    small: list[bytes] = []
    big: list[bytes] = []
    gone = 0
    for key, size in sized:
        if size is None:
            gone += 1
        elif size > big_key_bytes:
            big.append(key)
        else:
            small.append(key)
    step = max(batch_keys, 1)
    batches = tuple(tuple(small[i : i + step]) for i in range(0, len(small), step))
    return Split(batches, tuple(big), gone)


def near_bound(sampled: int, big_key_bytes: int) -> bool:
    """True when a sampled ``MEMORY USAGE`` is too close to ``big_key_bytes`` to class
    the key by it (within a factor of 2): measure it exactly (``SAMPLES 0``). Far above
    is big, far below is small, without walking every element of a huge key."""
    return big_key_bytes / 2 < sampled <= 2 * big_key_bytes


def routers_behind(routers: Mapping[str, int | None], epoch: int) -> list[str]:
    """``"host:port at epoch N"`` (or ``"... at epoch ?"``) for every router whose epoch
    is unknown or below ``epoch``, sorted; empty when every router has it."""
    out = []
    for addr, have in sorted(routers.items()):
        if have is None or have < epoch:
            out.append(f"{addr} at epoch {'?' if have is None else have}")
    return out


def merge_routers(*views: Mapping[str, int | None]) -> dict[str, int | None]:
    """The union of several sentinels' ``{router: epoch}``: the highest epoch any of
    them heard from each router (None only when none knows it)."""
    out: dict[str, int | None] = {}
    for view in views:
        for addr, epoch in view.items():
            have = out.get(addr)
            if addr not in out or (epoch is not None and (have is None or epoch > have)):
                out[addr] = epoch
    return out


class TokenBucket:
    """Keys per second, as arithmetic: `reserve` says how long to wait before sending.

    ``rate`` 0 means no limit. Tokens refill at ``rate`` per second up to
    ``burst``; a reservation takes its tokens at once, going into debt if there
    are not enough, and returns the seconds until the debt is paid off (the
    caller sleeps that long, then sends). So after ``t`` seconds of use at most
    ``burst + rate * t`` keys were reserved with a zero wait or waited off.
    """

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = float(rate)
        self.burst = max(float(burst), 1.0)
        self.tokens = self.burst
        self.at = now

    def _refill(self, now: float) -> None:
        if now > self.at:
            self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
            self.at = now

    def reserve(self, n: int, now: float) -> float:
        """Take ``n`` tokens; seconds to wait before using them (0.0: at once)."""
        if self.rate <= 0:
            return 0.0
        self._refill(now)
        self.tokens -= n
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


@dataclass
class Progress:
    """One migration's progress as its mover sees it (``GET /status`` ``"migrations"``)."""

    migration: Migration
    since_epoch: int
    mover: str
    started_at: float  # unix time (shown), set when the mover first took it up
    state: str = "waiting-routers"
    waiting_for: list[str] = field(default_factory=list)
    keys_total: int | None = None
    keys_moved: int = 0
    bytes_moved: int = 0
    big_keys_moved: int = 0
    errors: int = 0
    reason: str | None = None
    passes: int = 0
    # (clock, keys_moved) samples for the rate, oldest first
    samples: collections.deque[tuple[float, int]] = field(default_factory=collections.deque)

    @property
    def keys_left(self) -> int | None:
        if self.keys_total is None:
            return None
        return max(self.keys_total - self.keys_moved, 0)

    def moved(self, keys: int, nbytes: int, now: float, big: bool = False) -> None:
        self.keys_moved += keys
        self.bytes_moved += nbytes
        if big:
            self.big_keys_moved += keys
        self.sample(now)

    def sample(self, now: float) -> None:
        self.samples.append((now, self.keys_moved))
        while len(self.samples) > 2 and now - self.samples[1][0] > RATE_WINDOW:
            self.samples.popleft()

    def rate(self, now: float) -> float:
        """Keys per second over the last `RATE_WINDOW` seconds (0.0 before two samples)."""
        if len(self.samples) < 2:
            return 0.0
        t0, k0 = self.samples[0]
        span = now - t0
        return (self.keys_moved - k0) / span if span > 0 else 0.0

    def eta(self, now: float) -> float | None:
        left = self.keys_left
        if left is None:
            return None
        if left == 0:
            return 0.0
        rate = self.rate(now)
        return left / rate if rate > 0 else None

    def to_status(self, now: float) -> dict[str, object]:
        return {
            **self.migration.to_dict(),
            "since_epoch": self.since_epoch,
            "mover": self.mover,
            "state": self.state,
            "waiting_for": list(self.waiting_for),
            "keys_total": self.keys_total,
            "keys_moved": self.keys_moved,
            "keys_left": self.keys_left,
            "bytes_moved": self.bytes_moved,
            "big_keys_moved": self.big_keys_moved,
            "errors": self.errors,
            "rate_keys_per_s": round(self.rate(now), 1),
            "eta_s": None if (eta := self.eta(now)) is None else round(eta, 1),
            "started_at": self.started_at,
            "reason": self.reason,
        }


def unknown_status(m: Migration, since_epoch: int, mover: str | None) -> dict[str, object]:
    """The entry a sentinel that is not the mover shows when its mover told it nothing."""
    return {
        **m.to_dict(),
        "since_epoch": since_epoch,
        "mover": mover,
        "state": "moving",
        "waiting_for": [],
        "keys_total": None,
        "keys_moved": 0,
        "keys_left": None,
        "bytes_moved": 0,
        "big_keys_moved": 0,
        "errors": 0,
        "rate_keys_per_s": 0.0,
        "eta_s": None,
        "started_at": None,
        "reason": None,
    }


class Throttle:
    """True at most once per ``interval`` seconds per key (events that could flood)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.last: dict[object, float] = {}

    def allow(self, key: object, now: float) -> bool:
        last = self.last.get(key)
        if last is not None and now - last < self.interval:
            return False
        self.last[key] = now
        return True


@dataclass
class MoverStats:
    """The mover's counters for ``GET /metrics`` (plain numbers, never reset)."""

    keys_moved: collections.Counter[tuple[str, str]] = field(
        default_factory=collections.Counter
    )  # (source, target)
    bytes_moved: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)
    errors: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)
    last_duration: float = 0.0  # seconds, the last migration this sentinel saw finish
