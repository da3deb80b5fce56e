"""Online resharding end to end (issue 13): keys move with their slots, clients see nothing.

Real processes (`slotwarden.rig`): 3 shards (master + replica each), 3 sentinels, two
routers on copies of one cluster.yaml; a 4th shard started by the test. Data
(`slotwarden.dataset`): `N` keys of every type (strings, hashes, lists, sets, zsets,
streams; half with a TTL; one in `BIG_EVERY` a hash above ``big_key_bytes``, moved in
chunks: ~10 at most). A writer through router 1 and a reader through router 2 run throughout.

Phases, each a cluster.yaml edit: (a) add shard d and move a quarter of the slots to it
(from a, b and c); (b) move them back (d kept, owning nothing: ``slots: ""``); (c) remove
shard c (its slots to a, b and d). After each, with the clients paused:

- every key holds what the acknowledged writes left (through router 1, router 2, and
  read directly from the master owning its slot), TTLs kept (never grown, never lost);
- scanning every master (the removed shard's nodes too): each key on exactly one, the
  owner of its slot; nothing of the set on a source; no ``__slotwarden:tmp:`` key left;
- the writer and the reader saw no error, and the reader never read a key missing or
  older than its last acknowledged write.

Mid-move (the mover held to 1 key/s, no big key): the routers alone move what the clients
touch, and reading every key through both routers leaves each on its slot's target only.

Then the same move (a quarter of the slots, all from shard a to a new shard d) with a
fault in the middle (the mover's ``/status`` showing keys moved): kill -9 of the source
master (the sentinels fail it over, the mover resumes on the promoted replica), and
kill -9 of the mover sentinel (another sentinel's mover resumes). During the source kill
the writer writes keys of the moving slots and of shards b and c only (a write that a
master acknowledged and died with before its replica had it is asynchronous
replication's loss, not resharding's). Allowed client errors, and only then:

- source kill: ``-TRYAGAIN`` and ``-CLUSTERDOWN``, from the kill until the routers run the
  failover's epoch + 2 s, or until 12 s after the kill if that is later (a big key's lock,
  ``PX 10000``, taken on the killed master lives on in the promoted replica);
- mover kill: ``-TRYAGAIN`` only, for 12 s after the kill (the dead mover's lock).

Size: ``SLOTWARDEN_RESHARD_KEYS`` (default `N`, ~1 min per test on 2 cores);
``SLOTWARDEN_RESHARD_KEYS=200000`` runs the issue's size (by hand, several minutes).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator, Sequence

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from slotwarden.cluster.slots import key_hash_slot, parse_ranges
from slotwarden.cluster.topology import SlotMap
from slotwarden.dataset import (
    Model,
    Reader,
    Writer,
    key_name,
    load,
    placement,
    verify_contents,
)
from slotwarden.procs import RouterProc, wait_for_port
from slotwarden.rig import ReshardRig, wait_for

N = int(os.environ.get("SLOTWARDEN_RESHARD_KEYS", "3000"))
# one key in BIG_EVERY (a hash, so a multiple of 6): ~20 KB, above BIG_KEY_BYTES, moved in
# chunks (25 at N=3000, 1667 at N=200,000): a client that touches one before the mover's
# pass reaches it waits for that key only (the mover moves requested keys next)
BIG_EVERY = 120
BIG_KEY_BYTES = 8192
SETTLE_S = 60 + N / 1000  # a move of N/4 keys at >= ~20 keys/ms, plus elections and load
FAULT_RATE = max(100, N // 20)  # keys/s in the fault tests: the move lasts ~5 s
GRACE_S = 2.0  # after the routers run the failover's epoch
LOCK_S = 12.0  # a big key's lock (PX 10000) left by a kill, + slack: TRYAGAIN meanwhile

pytestmark = pytest.mark.timeout(int(300 + N / 200))


def migration(rate: int = 0) -> dict[str, int]:
    return {"keys_per_second": rate, "batch_keys": 100, "big_key_bytes": BIG_KEY_BYTES,
            "chunk_items": 100}  # fmt: skip


def in_slots(ranges: str) -> list[int]:
    """The indices of the data set whose key is in ``ranges``."""
    slots = {s for lo, hi in parse_ranges(ranges) for s in range(lo, hi + 1)}
    return [i for i in range(N) if key_hash_slot(key_name(i)) in slots]


def all_but(indices: Sequence[int]) -> list[int]:
    """The indices of the data set not in ``indices``."""
    skip = set(indices)
    return [i for i in range(N) if i not in skip]


def no_retry_client(rig: ReshardRig, n: int) -> redis.Redis:
    """A router client that reports every error (redis-py would otherwise resend a write
    after a connection error: applied twice, or once unseen)."""
    return rig.router_client(n, retry=Retry(NoBackoff(), 0))


class Clients:
    """The writer (router 1) and the reader (router 2), restartable between phases."""

    def __init__(self, rig: ReshardRig, model: Model) -> None:
        self.rig, self.model = rig, model
        self.writer: Writer | None = None
        self.reader: Reader | None = None
        self.seed = 0

    def start(self, write_keys: Sequence[int], read_keys: Sequence[int]) -> None:
        self.seed += 1
        self.writer = Writer(no_retry_client(self.rig, 0), self.model, write_keys, self.seed)
        self.reader = Reader(no_retry_client(self.rig, 1), self.model, read_keys, self.seed)
        self.writer.start()
        self.reader.start()
        wait_for(lambda: self.writer.ops > 20 and self.reader.ops > 20, 30, "clients running")

    def stop(self) -> tuple[Writer, Reader]:
        assert self.writer is not None and self.reader is not None
        self.writer.stop()
        self.reader.stop()
        return self.writer, self.reader


@pytest.fixture
def rig_and_model(request) -> Iterator[tuple[ReshardRig, Model]]:
    """The rig (``request.param``: (the mover's keys/s, one big key in how many), default
    (0: no limit, BIG_EVERY)) with the data set loaded and replicated."""
    rate, big_every = getattr(request, "param", (0, BIG_EVERY))
    rig = ReshardRig(shards=3, replicas=1, routers=2, migration=migration(rate))
    try:
        rig.start()
        model = Model(N, big_every)
        with rig.router_client(0, socket_timeout=60) as r:
            load(lambda: r.pipeline(transaction=False), range(N), big_every)
        model.loaded_at = time.time()
        rig.wait_replicas_synced()
        yield rig, model
    finally:
        rig.close()


def biased(moving: Sequence[int], others: Sequence[int]) -> list[int]:
    """Keys for the writer: as many of the moving slots as of the others."""
    pick = random.Random(len(moving)).sample(list(others), min(len(moving), len(others)))
    return [*moving, *pick] or list(others)


def check(
    rig: ReshardRig,
    model: Model,
    clients: Clients,
    label: str,
    allowed: tuple[frozenset[str], float, float] | None = None,
) -> None:
    """Once the edit has settled, stop the clients and make the checks of the module
    docstring; ``allowed``: (error kinds, from, until) that may have been seen, monotonic
    times."""
    try:
        rig.wait_settled(SETTLE_S)
    except TimeoutError as exc:
        writer, reader = clients.stop()
        seen = [e.text for e in writer.errors[:3] + reader.errors[:3]]
        migrations = rig.sentinel_http("/status").get("migrations")
        raise AssertionError(
            f"{label}: {exc}\nmigrations: {migrations}\nclient errors: {seen}\n{rig.logs()}"
        ) from None
    writer, reader = clients.stop()
    sm = rig.wait_settled(SETTLE_S)
    problems = verify_everywhere(rig, model, sm, label)
    problems += client_problems(writer, reader, label, allowed)
    assert not problems, "\n".join(problems) + "\n" + rig.logs()
    print(
        f"{label}: epoch {sm.epoch}, {writer.ops} writes, {reader.ops} reads, "
        f"{len(writer.errors) + len(reader.errors)} allowed errors, {len(model.uncertain)} "
        f"keys with a failed write"
    )


def verify_everywhere(rig: ReshardRig, model: Model, sm: SlotMap, label: str) -> list[str]:
    """Every key through both routers, then directly from the master owning its slot in
    ``sm`` (a migrating slot's owner is its target); every master (and the nodes of a
    removed shard) scanned: each key once, on its owner; no temp key of a chunked copy."""
    problems: list[str] = []
    for n in (0, 1):
        with rig.router_client(n, socket_timeout=60) as r:
            problems += verify_contents(r, model, f"{label}: router {n + 1}")
    owner = rig.owner_name(sm)
    masters = rig.masters(sm)
    by_owner: dict[str, list[int]] = {}
    for i in range(N):
        by_owner.setdefault(owner(key_hash_slot(key_name(i))), []).append(i)
    for name, indices in by_owner.items():
        problems += verify_contents(masters[name], model, f"{label}: {name} directly", indices)
    problems += [f"{label}: {p}" for p in placement(masters, owner, N)]
    for name, client in masters.items():
        temp = list(client.scan_iter(match=b"__slotwarden:tmp:*", count=1000))
        if temp:
            problems.append(f"{label}: {len(temp)} temp keys left on {name}: {temp[:3]}")
        client.close()
    return problems


def client_problems(
    writer: Writer,
    reader: Reader,
    label: str,
    allowed: tuple[frozenset[str], float, float] | None = None,
) -> list[str]:
    """The first error each client saw that ``allowed`` does not cover; stale reads."""
    problems = []
    for who in (writer, reader):
        for e in who.errors:
            ok = allowed is not None and e.kind in allowed[0] and allowed[1] <= e.at <= allowed[2]
            if not ok:
                when = "" if allowed is None else (
                    f", {e.at - allowed[1]:+.2f} s from the fault (window "
                    f"{allowed[2] - allowed[1]:.2f} s)"
                )  # fmt: skip
                problems.append(
                    f"{label}: {type(who).__name__} saw {e.text!r} (key rs:{e.key}{when}; "
                    f"{len(who.errors)} errors in all)"
                )
                break
    return problems + [f"{label}: reader read {s}" for s in reader.stale[:10]]


def test_add_a_shard_move_back_and_remove_one_under_load(rig_and_model):
    rig, model = rig_and_model
    clients = Clients(rig, model)
    a, b, c = rig.layout["a"], rig.layout["b"], rig.layout["c"]  # 0-5460, 5461-10922, ...
    # (a) shard d gets a quarter of the slots (4096): 1365 of a, 1365 of b, 1366 of c
    moved = "0-1364,5461-6825,10923-12288"
    rig.add_nodes("d")
    moving = in_slots(moved)
    others = all_but(moving)
    clients.start(biased(moving, others), range(N))
    rig.set_layout({"a": "1365-5460", "b": "6826-10922", "c": "12289-16383", "d": moved})
    check(rig, model, clients, "(a) add d")

    # (b) back where they were; d stays, owning nothing
    clients.start(biased(moving, others), range(N))
    rig.set_layout({"a": a, "b": b, "c": c, "d": ""})
    check(rig, model, clients, "(b) move back")

    # (c) remove shard c: its slots to a, b and d; c drains
    moving = in_slots(c)
    others = all_but(moving)
    clients.start(biased(moving, others), range(N))
    rig.set_layout({"a": f"{a},10923-12742", "b": f"{b},12743-14563", "d": "14564-16383"})
    check(rig, model, clients, "(c) remove c")


@pytest.mark.parametrize("rig_and_model", [(1, 0)], indirect=True)
def test_mid_move_two_routers_move_what_they_touch(rig_and_model):
    """While the migration runs (the mover held to 1 key/s), the routers alone move the
    keys the clients touch: no error, no stale read; then reading every key through both
    routers moves the rest, and every key is on its slot's target only, intact. No big
    key here: routers never move one (they wait for the mover)."""
    rig, model = rig_and_model
    clients = Clients(rig, model)
    rig.add_nodes("d")
    moved = "0-1364,5461-6825,10923-12288"
    moving = in_slots(moved)
    clients.start(biased(moving, all_but(moving)), range(N))
    rig.set_layout({"a": "1365-5460", "b": "6826-10922", "c": "12289-16383", "d": moved})

    def migrating() -> SlotMap | None:
        sm = rig.sentinel_map()
        # (a migration may first be published "preparing", then "moving" at a new epoch)
        moving = all(getattr(m, "state", "moving") == "moving" for m in sm.migrations)
        ok = sm.migrations and moving and all(e >= sm.epoch for e in rig.router_epochs())
        return sm if ok else None

    sm = wait_for(migrating, SETTLE_S, "the migrations published, both routers on them")
    before = clients.writer.ops if clients.writer else 0
    wait_for(lambda: clients.writer.ops > before + 200, 30, "writes during the migration")
    writer, reader = clients.stop()
    problems = client_problems(writer, reader, "mid-move")
    problems += verify_everywhere(rig, model, sm, "mid-move")
    assert not problems, "\n".join(problems) + "\n" + rig.logs()


def start_fault_move(rig: ReshardRig, model: Model, clients: Clients) -> list[int]:
    """A new shard d takes 0-4095 from a, under the clients; returns when the mover's
    /status shows a fifth of the keys moved."""
    rig.add_nodes("d")
    moving = in_slots("0-4095")
    in_a = set(in_slots(rig.layout["a"]))
    safe = [i for i in range(N) if i not in in_a]  # shards b and c
    clients.start(biased(moving, safe), range(N))
    rig.set_layout({"a": "4096-5460", "b": rig.layout["b"], "c": rig.layout["c"],
                    "d": "0-4095"})  # fmt: skip
    wanted = max(1, len(moving) // 5)

    def moved_enough() -> bool:
        return any((m.get("keys_moved") or 0) >= wanted for m in rig.migrations())

    wait_for(moved_enough, SETTLE_S, f"the mover's /status showing {wanted} keys moved")
    return moving


@pytest.mark.parametrize("rig_and_model", [(FAULT_RATE, BIG_EVERY)], indirect=True)
def test_kill_9_of_the_source_master_mid_move(rig_and_model):
    rig, model = rig_and_model
    clients = Clients(rig, model)
    start_fault_move(rig, model, clients)
    before = rig.sentinel_map()
    old = str(before.shards[before.shard_index("a")].master)
    killed_at = time.monotonic()
    rig.kill_master("a")

    def failed_over() -> bool:
        sm = rig.sentinel_map()
        return str(sm.shards[sm.shard_index("a")].master) != old and all(
            e >= sm.epoch for e in rig.router_epochs()
        )

    wait_for(failed_over, 30, "shard a failed over, the routers on that epoch")
    # a big key's lock taken on the killed master lives on, replicated, on the promoted one
    until = max(time.monotonic() + GRACE_S, killed_at + LOCK_S)
    check(rig, model, clients, "source master killed",
          (frozenset({"TRYAGAIN", "CLUSTERDOWN"}), killed_at, until))  # fmt: skip


@pytest.mark.parametrize("rig_and_model", [(FAULT_RATE, BIG_EVERY)], indirect=True)
def test_kill_9_of_the_target_master_mid_move(rig_and_model):
    """kill -9 of the TARGET's master mid-move: the sentinels promote its replica, a
    MIGRATE to the dead (or demoted) node fails and leaves its keys on the source, the
    mover and the routers go on against the promoted one; every check holds."""
    rig, model = rig_and_model
    clients = Clients(rig, model)
    start_fault_move(rig, model, clients)
    # d's replica must have completed its first sync (Redis starts it
    # repl-diskless-sync-delay, 5 s, after the replica connects): a replica that never
    # synced is never promoted (README "Which replica is promoted")
    rig.wait_replicas_synced()
    before = rig.sentinel_map()
    old = str(before.shards[before.shard_index("d")].master)
    killed_at = time.monotonic()
    rig.kill_master("d")

    def failed_over() -> bool:
        sm = rig.sentinel_map()
        return str(sm.shards[sm.shard_index("d")].master) != old and all(
            e >= sm.epoch for e in rig.router_epochs()
        )

    try:
        wait_for(failed_over, 30, "shard d failed over, the routers on that epoch")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{rig.logs(tail=400000)}") from None
    until = max(time.monotonic() + GRACE_S, killed_at + LOCK_S)
    check(rig, model, clients, "target master killed",
          (frozenset({"TRYAGAIN", "CLUSTERDOWN"}), killed_at, until))  # fmt: skip


@pytest.mark.parametrize("rig_and_model", [(FAULT_RATE, BIG_EVERY)], indirect=True)
def test_kill_9_of_the_mover_mid_move(rig_and_model):
    rig, model = rig_and_model
    clients = Clients(rig, model)
    start_fault_move(rig, model, clients)
    movers = {m.get("mover") for m in rig.migrations()} - {None}
    mover = min(movers) if movers else "s1"  # the lowest id alive moves
    killed_at = time.monotonic()
    rig.kill_sentinel(mover)
    check(rig, model, clients, f"mover {mover} killed",
          (frozenset({"TRYAGAIN"}), killed_at, killed_at + LOCK_S))  # fmt: skip


@pytest.mark.parametrize("rig_and_model", [(1, 0)], indirect=True)
def test_a_router_restarted_mid_move_learns_the_migration(rig_and_model):
    """A router restarted while a migration is moving (the mover held to 1 key/s, so most
    keys are still on their source) starts from the sentinels' topology, migration
    included: reading every key through it finds each one (moved from the source on
    touch) and leaves it on its slot's target only."""
    rig, model = rig_and_model
    rig.add_nodes("d")
    moved = "0-1364,5461-6825,10923-12288"
    rig.set_layout({"a": "1365-5460", "b": "6826-10922", "c": "12289-16383", "d": moved})

    def migrating() -> SlotMap | None:
        sm = rig.sentinel_map()
        moving = sm.migrations and all(m.state == "moving" for m in sm.migrations)
        return sm if moving and all(e >= sm.epoch for e in rig.router_epochs()) else None

    sm = wait_for(migrating, SETTLE_S, "the migrations moving, both routers on them")
    old = rig.routers[0]
    old.stop()
    port, admin = rig.router_addrs[0]
    log = os.path.join(rig.root, "router1-restarted.log")
    rig.routers[0] = RouterProc(rig.configs[0], port, log, env=rig.env).start()
    wait_for_port("127.0.0.1", admin)
    wait_for(lambda: rig.router_epochs()[0] >= sm.epoch, 20, "the restarted router's epoch")
    moving = {slot for lo, hi in parse_ranges(moved) for slot in range(lo, hi + 1)}
    sources = [node for name, node in rig.masters(sm).items() if name != "d"]
    left = sum(
        1
        for node in sources
        for key in node.scan_iter(count=1000)
        if key_hash_slot(key if isinstance(key, bytes) else key.encode()) in moving
    )
    for node in sources:
        node.close()
    assert left > N // 10  # most keys of the moving slots are still on their sources
    # router 1 (the restarted one) reads every key first
    problems = verify_everywhere(rig, model, rig.sentinel_map(), "restarted router")
    assert not problems, "\n".join(problems) + "\n" + rig.logs()
