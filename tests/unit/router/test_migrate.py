"""router.decide.migrate: which keys a request moves, the requests, reading the replies."""

from __future__ import annotations

from router.commands.spec import resolve
from router.decide import migrate as m
from router.decide.merge import merge_concat
from router.decide.walk import ScanWalk
from slotwarden.cluster.slots import key_hash_slot
from slotwarden.cluster.topology import Address, Migration, Shard, SlotMap
from slotwarden.resp.encode import encode_command

SHARDS = (Shard("a", Address("h", 1)), Shard("b", Address("h", 2)), Shard("c", Address("h", 3)))


def slotmap(migrating: bool = True) -> SlotMap:
    # a: 100-8191, b: 0-99 + 8192-16383 (0-99 migrating a -> b), c: nothing
    migrations = (Migration.of([(0, 99)], "a", "b"),) if migrating else ()
    return SlotMap.build(1, SHARDS, [[(100, 8191)], [(0, 99), (8192, 16383)], []], migrations)


def key_in(lo: int, hi: int, skip: int = 0) -> bytes:
    found = 0
    for i in range(100_000):
        k = f"k{i}".encode()
        if lo <= key_hash_slot(k) <= hi:
            if found == skip:
                return k
            found += 1
    raise AssertionError


def args(*words: bytes | str) -> list[bytes]:
    return [w.encode() if isinstance(w, str) else w for w in words]


def test_keys_to_move_only_migrating_unknown_keys_grouped_by_source() -> None:
    moving, moving2, staying = key_in(0, 99), key_in(0, 99, 1), key_in(100, 8191)
    req = args("MSET", moving, "1", staying, "2", moving2, "3", moving, "4")
    moved = m.MovedKeys()
    assert m.keys_to_move(resolve(req), req, slotmap(), moved) == {0: [moving, moving2]}
    moved.add([moving])
    assert m.keys_to_move(resolve(req), req, slotmap(), moved) == {0: [moving2]}
    assert m.keys_to_move(resolve(req), req, slotmap(False), m.MovedKeys()) == {}
    get = args("GET", staying)
    assert m.keys_to_move(resolve(get), get, slotmap(), moved) == {}


def test_keys_to_move_skips_own_keys_channels_and_bad_requests() -> None:
    own = next(
        f"__slotwarden:lock:{i}".encode()
        for i in range(10_000)
        if key_hash_slot(f"__slotwarden:lock:{i}".encode()) < 100
    )
    req = args("GET", own)
    assert m.keys_to_move(resolve(req), req, slotmap(), m.MovedKeys()) == {}
    ch = args("SPUBLISH", key_in(0, 99), "msg")
    assert m.keys_to_move(resolve(ch), ch, slotmap(), m.MovedKeys()) == {}
    bad = args("EVAL", "return 1", "5", key_in(0, 99))  # numkeys too big: the server answers
    assert m.keys_to_move(resolve(bad), bad, slotmap(), m.MovedKeys()) == {}
    ev = args("EVAL", "return 1", "1", key_in(0, 99), "arg")
    assert m.keys_to_move(resolve(ev), ev, slotmap(), m.MovedKeys()) == {0: [key_in(0, 99)]}


def test_moved_keys_bounded_and_forgotten_when_migrations_change() -> None:
    moved = m.MovedKeys(limit=3)
    sm = slotmap()
    moved.follow(sm.migrations)
    moved.add([b"a", b"b", b"c", b"d"])
    assert len(moved) == 3 and b"a" not in moved and b"d" in moved
    moved.follow(sm.derive(epoch=2).migrations)  # same migrations, later epoch: kept
    assert b"d" in moved
    moved.follow(())
    assert len(moved) == 0


def test_check_requests_and_reading_them() -> None:
    keys = [b"x", b"y", b"z", b"w"]
    reqs = m.check_requests(keys)
    assert reqs[0].startswith(b"*5\r\n$4\r\nMGET\r\n$19\r\n__slotwarden:lock:x\r\n")
    usage = b"*5\r\n$6\r\nMEMORY\r\n$5\r\nUSAGE\r\n$1\r\nx\r\n$7\r\nSAMPLES\r\n$1\r\n0\r\n"
    assert reqs[1] == usage
    locks = b"*4\r\n$-1\r\n$6\r\nholder\r\n$-1\r\n$-1\r\n"
    check = m.read_check(keys, [locks, b":56\r\n", b":56\r\n", b"$-1\r\n", b":5000\r\n"], 1000)
    assert check.movable == [b"x"] and check.waiting == [b"y", b"w"] and check.absent == [b"z"]
    assert check.error is None
    failed = m.read_check(keys, [b"-NOPERM no\r\n", b":1\r\n", b":1\r\n", b":1\r\n", b":1\r\n"], 9)
    assert failed.error == "NOPERM no"


def test_migrate_request_without_replace_with_auth() -> None:
    assert m.migrate_request("10.0.0.2", 7001, b"k", 2000, None) == (
        b"*8\r\n$7\r\nMIGRATE\r\n$8\r\n10.0.0.2\r\n$4\r\n7001\r\n$0\r\n\r\n$1\r\n0\r\n"
        b"$4\r\n2000\r\n$4\r\nKEYS\r\n$1\r\nk\r\n"
    )
    with_user = m.migrate_request("h", 1, b"k", 5, [b"router", b"pw"])
    assert b"$5\r\nAUTH2\r\n$6\r\nrouter\r\n$2\r\npw\r\n$4\r\nKEYS" in with_user
    assert b"REPLACE" not in with_user and b"COPY" not in with_user
    assert b"$4\r\nAUTH\r\n$2\r\npw\r\n" in m.migrate_request("h", 1, b"k", 5, [b"pw"])


def test_read_migrate() -> None:
    assert m.read_migrate(b"+OK\r\n") is m.MOVED
    assert m.read_migrate(b"+NOKEY\r\n") is m.ABSENT
    busy = b"-ERR Target instance replied with error: BUSYKEY Target key name already exists.\r\n"
    assert m.read_migrate(busy) is m.BUSY
    assert m.read_migrate(b"-IOERR error or timeout connecting to the client\r\n") is m.FAILED
    assert m.read_migrate(b"-ERR Target instance replied with error: READONLY x\r\n") is m.FAILED


def test_tryagain_replies() -> None:
    waiting = b"-TRYAGAIN key k is being moved to shard b, try again\r\n"
    assert m.tryagain_waiting(b"k", "b") == waiting
    assert m.tryagain_failed(b"k", "a", "b", "IOERR x") == (
        b"-TRYAGAIN key k could not be moved from shard a to shard b (IOERR x), try again\r\n"
    )


def test_keys_and_scan_leave_out_the_projects_keys() -> None:
    part1 = b"*2\r\n$1\r\na\r\n$22\r\n__slotwarden:lock:abcd\r\n"
    part2 = b"*1\r\n$1\r\nb\r\n"
    assert merge_concat([part1, part2]) == b"*2\r\n$1\r\na\r\n$1\r\nb\r\n"
    walk = ScanWalk.of([b"SCAN", b"0"], 1)
    assert not isinstance(walk, bytes)
    reply = walk.step(b"*2\r\n$1\r\n0\r\n*2\r\n$1\r\nz\r\n$20\r\n__slotwarden:tmp:x:y\r\n")
    assert reply == b"*2\r\n$1\r\n0\r\n*1\r\n$1\r\nz\r\n"


def test_sort_patterns_reading_a_migrating_slot_are_tryagain() -> None:
    tag = next(f"{{t{i}}}" for i in range(100_000) if key_hash_slot(f"t{i}".encode()) < 100)
    sort = args("SORT", key_in(0, 99), "BY", f"{tag}w_*", "GET", "#")
    refused = m.sort_refusal(resolve(sort), sort, slotmap())
    assert refused is not None and refused.startswith(b"-TRYAGAIN SORT BY/GET patterns")
    assert m.sort_refusal(resolve(sort), sort, slotmap(False)) is None
    plain = args("SORT", key_in(0, 99), "GET", "#", "BY", "nosort")
    assert m.sort_refusal(resolve(plain), plain, slotmap()) is None


def preparing_map() -> SlotMap:
    """0-99 preparing a -> b, 200-299 moving a -> b."""
    migrations = (
        Migration.of([(0, 99)], "a", "b", "preparing"),
        Migration.of([(200, 299)], "a", "b"),
    )
    owners = [[(100, 199), (300, 8191)], [(0, 99), (200, 299), (8192, 16383)], []]
    return SlotMap.build(1, SHARDS, owners, migrations)


def test_held_slot_is_the_first_key_in_a_preparing_slot() -> None:
    prep, moving, staying = key_in(0, 99), key_in(200, 299), key_in(300, 8191)
    for req in (
        args("GET", prep),
        args("MSET", staying, "1", moving, "2", prep, "3"),
        args("EVAL", "return 1", "2", staying, prep, "arg"),
        args("BLPOP", staying, prep, "0"),
        args("WATCH", prep),
    ):
        assert m.held_slot(resolve(req), req, preparing_map()) == key_hash_slot(prep), req
    for req in (
        args("GET", moving),  # moving: the pre-move's job, not held
        args("MGET", staying, moving),
        args("PING"),  # keyless: never held
        args("DBSIZE"),
        args("SPUBLISH", prep, "msg"),  # a channel, not a key
        args("EVAL", "return 1", "5", prep),  # numkeys too big: the server answers
    ):
        assert m.held_slot(resolve(req), req, preparing_map()) is None, req
    own = next(
        f"__slotwarden:lock:{i}".encode()
        for i in range(10_000)
        if key_hash_slot(f"__slotwarden:lock:{i}".encode()) < 100
    )
    req = args("GET", own)
    assert m.held_slot(resolve(req), req, preparing_map()) is None
    req = args("GET", prep)
    assert m.held_slot(resolve(req), req, slotmap()) is None  # only moving migrations
    assert m.held_slot(resolve(req), req, slotmap(False)) is None


def test_tryagain_preparing_text() -> None:
    assert m.tryagain_preparing(42, "a", "d") == (
        b"-TRYAGAIN slot 42 is about to move from shard a to shard d, try again\r\n"
    )


def test_exec_refusal_only_for_a_migration_begun_during_the_transaction() -> None:
    before, prep = slotmap(False), preparing_map()
    moving = prep.derive(migrations=tuple(x.with_state("moving") for x in prep.migrations))
    assert m.exec_refusal(None, prep) is None  # no WATCH/MULTI recorded
    assert m.exec_refusal(prep, prep) is None
    assert m.exec_refusal(prep, moving) is None  # the same moves, now moving: held/moved
    assert m.exec_refusal(prep, before) is None  # no migration now
    refused = m.exec_refusal(before, prep)
    assert refused is not None and refused.startswith(
        b"-EXECABORT Transaction discarded because of: TRYAGAIN slots 0-99 started moving "
        b"from shard a to shard b during the transaction, try again"
    )
    assert m.exec_refusal(slotmap(), prep) is not None  # 200-299 is new


def test_ask_requests_add_the_waited_keys_to_their_migrations_request_sets() -> None:
    """A router waiting for a big or locked key asks the mover to move it next: SADD to
    the request set of the key's migration (on the source), renewed with PEXPIRE."""
    second = Migration.of([(200, 299), (400, 410)], "a", "c")
    smap = SlotMap.build(
        1,
        SHARDS,
        [[(100, 199), (300, 399), (411, 8191)], [(0, 99), (8192, 16383)], [(200, 299), (400, 410)]],
        (Migration.of([(0, 99)], "a", "b"), second),
    )
    k1, k2, k3 = key_in(0, 99), key_in(0, 99, 1), key_in(400, 410)
    staying = key_in(100, 199)
    assert m.ask_requests([k1, k3, k2, staying], smap) == [
        encode_command([b"SADD", b"__slotwarden:wanted:0", k1, k2]),
        encode_command([b"PEXPIRE", b"__slotwarden:wanted:0", b"60000"]),
        encode_command([b"SADD", b"__slotwarden:wanted:200", k3]),
        encode_command([b"PEXPIRE", b"__slotwarden:wanted:200", b"60000"]),
    ]
    assert m.ask_requests([staying], smap) == []
    assert m.ask_requests([], smap) == []
