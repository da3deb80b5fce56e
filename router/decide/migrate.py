"""The router's pre-move of keys in migrating slots: what moves, the requests, the replies.

Pure, no I/O (the I/O half is `router.wire.migrate`). While a slot migrates
(`slotwarden.cluster.topology.Migration`) its owner in the slot map is the
*target*; a key of it may still live on the *source*. Before a command whose
keys are in migrating slots is sent, each such key is moved source → target
(README *Resharding*):

    check    MGET __slotwarden:lock:<k>…  + MEMORY USAGE <k> SAMPLES 0 … on the source
               nil usage ─► not there: nothing to move
               locked, or above big_key_bytes ─► the mover is moving it: re-check later,
               and ask the mover to move it next (`ask_requests`: SADD to the
               migration's request set on the source, pipelined with the re-check)
    move     MIGRATE host port "" 0 timeout [AUTH|AUTH2 …] KEYS <k>  (one per key, no
             REPLACE) + WAIT <replicas> <ms> on the source, pipelined
               +OK / +NOKEY ─► moved (or gone)
               -…BUSYKEY… ─► the target has it already (newer): DEL <k> on the source
               any other error ─► the key stays: -TRYAGAIN, the command is not sent

Before any of that, a migration is first ``preparing`` (README *Resharding*): a
request with a key in one of its slots is HELD (`held_slot`: neither moved nor
sent) until the sentinels publish the migration ``moving`` (then the pre-move
above) or without it (then sent to the owner); past command_timeout_ms it is
answered `tryagain_preparing` and was not executed. Keyless requests are never held.

A transaction (or WATCH) begun before a migration appeared is refused at EXEC
(`exec_refusal`): its commands were planned for the old layout.

SORT BY/GET patterns that read keys of a migrating slot (preparing or moving) are
answered -TRYAGAIN until the migration ends (`sort_refusal`): those keys cannot be
listed beforehand.

One MIGRATE per key (not one ``KEYS k1 k2 …``) so that each reply names the
fate of its own key: a multi-key MIGRATE answers only the first error and
leaves the others unknown.

`MovedKeys` remembers, per router, the keys already moved (or found absent) under
the current migrations: a key never returns to the source while its slot
migrates (nobody writes it there), so a second touch costs nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from router.commands.key_finders import KeySpecError
from router.commands.spec import CommandSpec, key_positions
from router.decide.merge import OWN_PREFIX
from router.decide.sort_patterns import SORTS, pattern_slots
from router.decide.txn import execabort_because
from slotwarden.cluster.ownkeys import WANTED_TTL_MS, wanted_key
from slotwarden.cluster.topology import Migration, SlotMap
from slotwarden.resp.accel import key_slot
from slotwarden.resp.encode import encode_command, error_reply
from slotwarden.resp.replies import split_array

LOCK_PREFIX = b"__slotwarden:lock:"  # the mover's lock on a big key it copies in chunks
RECHECK_S = 0.020  # a locked or big key is looked at again this often
# A key still waited for is asked for again this often (the mover's move of it may have
# failed, or the source failed over and lost the request set).
ASK_EVERY_S = 0.25
WAIT_MS = 100  # WAIT's timeout after a MIGRATE: best effort, bounded (a replica may be down)
MOVED_KEYS_MAX = 100_000  # keys remembered as moved, per router
# Channels, not keys (SPUBLISH/SSUBSCRIBE pick a shard like keys do): nothing to move.
CHANNEL_COMMANDS = frozenset({"spublish", "ssubscribe", "sunsubscribe"})


class MovedKeys:
    """Keys known to be on their target (moved, or absent from the source) under one
    tuple of migrations; bounded (the oldest forgotten first), emptied when the
    migrations change."""

    __slots__ = ("keys", "limit", "migrations")

    def __init__(self, limit: int = MOVED_KEYS_MAX) -> None:
        self.limit = limit
        self.migrations: tuple[Migration, ...] = ()
        self.keys: dict[bytes, None] = {}

    def follow(self, migrations: tuple[Migration, ...]) -> None:
        """Forget everything if ``migrations`` are not the ones the keys were moved under."""
        if migrations is not self.migrations and migrations != self.migrations:
            self.keys.clear()
        self.migrations = migrations

    def __contains__(self, key: bytes) -> bool:
        return key in self.keys

    def __len__(self) -> int:
        return len(self.keys)

    def add(self, keys: Iterable[bytes]) -> None:
        store = self.keys
        for key in keys:
            store[key] = None
            if len(store) > self.limit:
                del store[next(iter(store))]


def keys_to_move(
    spec: CommandSpec, args: list[bytes], slotmap: SlotMap, moved: MovedKeys
) -> dict[int, list[bytes]]:
    """The keys of ``args`` that may still be on a migration's source, grouped by the
    source's shard index (each key once, in request order); {} when none. A request
    whose keys cannot be found is left to the normal path (it answers the error)."""
    if not slotmap.migrations or spec.name in CHANNEL_COMMANDS:
        return {}
    try:
        positions = key_positions(spec, args)
    except KeySpecError:
        return {}
    moving = slotmap.moving
    out: dict[int, list[bytes]] = {}
    seen: set[bytes] = set()
    for index in positions:
        if index >= len(args):
            continue
        key = args[index]
        source = moving[key_slot(key)]
        if source == 255 or key in seen or key in moved or key.startswith(OWN_PREFIX):
            continue
        seen.add(key)
        out.setdefault(source, []).append(key)
    return out


def held_slot(spec: CommandSpec, args: list[bytes], slotmap: SlotMap) -> int | None:
    """The slot of the first key of ``args`` whose migration is still ``preparing``
    (the request must wait: nothing may touch that slot's keys yet), None if no key
    is (keyless requests, keys the normal path refuses, the project's own keys)."""
    if not slotmap.migrations or spec.name in CHANNEL_COMMANDS:
        return None
    if not any(m.preparing for m in slotmap.migrations):
        return None
    try:
        positions = key_positions(spec, args)
    except KeySpecError:
        return None
    moving = slotmap.moving
    for index in positions:
        if index >= len(args):
            continue
        key = args[index]
        slot = key_slot(key)
        if moving[slot] != 255 and not key.startswith(OWN_PREFIX) and slotmap.is_preparing(slot):
            return slot
    return None


def exec_refusal(since: SlotMap | None, now: SlotMap) -> bytes | None:
    """EXEC of a transaction begun (WATCH or MULTI) under ``since``: -EXECABORT … TRYAGAIN
    if a migration started since then (its queued commands were planned for the shards
    of that time, before their keys could be held or moved: they could write a source
    that is being emptied, or a WATCH on the source miss a write on the target). A
    migration that was already there, whatever its state, is no reason."""
    if since is None or now is since or not now.migrations:
        return None
    for m in now.migrations:
        if not any(m.same_move(old) for old in since.migrations):
            return execabort_because(
                error_reply(
                    f"TRYAGAIN slots {m.ranges()} started moving from shard {m.source} to "
                    f"shard {m.target} during the transaction, try again"
                )
            )
    return None


def sort_refusal(spec: CommandSpec, args: list[bytes], slotmap: SlotMap) -> bytes | None:
    """SORT/SORT_RO whose BY/GET patterns read keys of a migrating slot: -TRYAGAIN until
    the migration ends (those keys cannot be listed to move them first, and a key still
    on the source would be read as missing: a silent wrong answer). None otherwise."""
    if spec.name not in SORTS or not slotmap.migrations:
        return None
    for slot in pattern_slots(args):
        migration = slotmap.migration_of(slot)
        if migration is not None:
            return error_reply(
                f"TRYAGAIN SORT BY/GET patterns read keys of slot {slot}, which are being "
                f"moved to shard {migration.target}, try again"
            )
    return None


def check_requests(keys: list[bytes]) -> list[bytes]:
    """The check round trip on the source: the locks, then each key's size."""
    out = [encode_command([b"MGET", *(LOCK_PREFIX + k for k in keys)])]
    out += [encode_command([b"MEMORY", b"USAGE", k, b"SAMPLES", b"0"]) for k in keys]
    return out


def ask_requests(keys: list[bytes], slotmap: SlotMap) -> list[bytes]:
    """Ask the mover to move ``keys`` next (the router waits for them: big or locked):
    per migration of their slots, ``SADD <its request set> k…`` and ``PEXPIRE <set>
    WANTED_TTL_MS`` (`slotwarden.cluster.ownkeys.wanted_key`), sent to the source."""
    by_set: dict[bytes, list[bytes]] = {}
    for key in keys:
        migration = slotmap.migration_of(key_slot(key))
        if migration is not None:
            by_set.setdefault(wanted_key(migration), []).append(key)
    out: list[bytes] = []
    ttl = str(WANTED_TTL_MS).encode()
    for name, members in by_set.items():
        out.append(encode_command([b"SADD", name, *members]))
        out.append(encode_command([b"PEXPIRE", name, ttl]))
    return out


@dataclass(slots=True)
class Check:
    """What the check round trip found, per key."""

    absent: list[bytes] = field(default_factory=list)  # not on the source
    movable: list[bytes] = field(default_factory=list)  # there, small, unlocked: MIGRATE it
    waiting: list[bytes] = field(default_factory=list)  # locked or big: the mover moves it
    error: str | None = None  # the source's error (the check failed: nothing is known)


def read_check(keys: list[bytes], replies: list[bytes], big_key_bytes: int) -> Check:
    """Read the replies of `check_requests` (RESP2)."""
    check = Check()
    for raw in replies:
        if raw[:1] == b"-":
            check.error = _text(raw)
            return check
    locks = split_array(replies[0])
    if locks is None or len(locks) != len(keys) or len(replies) != len(keys) + 1:
        check.error = "unexpected reply to the lock check"
        return check
    for key, lock, usage in zip(keys, locks, replies[1:], strict=True):
        if usage[:1] != b":":  # nil: not on the source
            check.absent.append(key)
        elif lock[:3] != b"$-1" or int(usage[1:]) > big_key_bytes:
            check.waiting.append(key)
        else:
            check.movable.append(key)
    return check


def migrate_request(
    host: str, port: int, key: bytes, timeout_ms: int, auth: list[bytes] | None
) -> bytes:
    """MIGRATE of one key to db 0 of the target, without REPLACE (nor COPY); ``auth``:
    ``[user, password]`` (AUTH2) or ``[password]`` (AUTH), the target's credentials.
    The bytes carry the password: never log them."""
    args = [b"MIGRATE", host.encode(), str(port).encode(), b"", b"0", str(timeout_ms).encode()]
    if auth:
        args += [b"AUTH2", *auth] if len(auth) == 2 else [b"AUTH", auth[0]]
    return encode_command([*args, b"KEYS", key])


def wait_request(replicas: int, timeout_ms: int = WAIT_MS) -> bytes:
    return encode_command([b"WAIT", str(replicas).encode(), str(timeout_ms).encode()])


def del_request(keys: list[bytes]) -> bytes:
    return encode_command([b"DEL", *keys])


MOVED, ABSENT, BUSY, FAILED = "moved", "absent", "busy", "failed"


def read_migrate(raw: bytes) -> str:
    """A MIGRATE reply: `MOVED`, `ABSENT` (NOKEY), `BUSY` (the target has the key:
    the source's copy is stale) or `FAILED` (the key stays on the source)."""
    if raw.startswith(b"+OK"):
        return MOVED
    if raw.startswith(b"+NOKEY"):
        return ABSENT
    if raw[:1] == b"-" and b"BUSYKEY" in raw:
        return BUSY
    return FAILED


def reason(raw: bytes) -> str:
    """The short text of an error reply (for -TRYAGAIN and the log)."""
    return _text(raw) if raw[:1] == b"-" else raw.rstrip(b"\r\n").decode("utf-8", "replace")[:200]


def _text(raw: bytes) -> str:
    return raw[1:].rstrip(b"\r\n").decode("utf-8", "replace")[:200]


def tryagain_waiting(key: bytes, target: str) -> bytes:
    """A key the mover is moving (locked, or big) still on the source at the deadline."""
    name = key.decode("utf-8", "replace")
    return error_reply(f"TRYAGAIN key {name} is being moved to shard {target}, try again")


def tryagain_preparing(slot: int, source: str, target: str) -> bytes:
    """A request held (its slot's migration still preparing) up to command_timeout_ms;
    it was not executed."""
    return error_reply(
        f"TRYAGAIN slot {slot} is about to move from shard {source} to shard {target}, try again"
    )


def tryagain_failed(key: bytes, source: str, target: str, why: str) -> bytes:
    """A key that could not be moved (it stays on the source; the command was not sent)."""
    name = key.decode("utf-8", "replace")
    return error_reply(
        f"TRYAGAIN key {name} could not be moved from shard {source} to shard {target} "
        f"({why}), try again"
    )
