"""router.decide.tracking: the key table (bound, eviction, flush, NOLOOP), the OPTIN/OPTOUT
rule and the encodings, as plain data (the replies' texts are checked against a real
redis-server in tests/protocol/router/test_tracking_protocol.py)."""

from __future__ import annotations

from router.decide import tracking as t


def test_invalidation_tells_each_reader_once_and_forgets_the_key() -> None:
    table = t.Table(0)
    table.add(0, b"a", 1)
    table.add(0, b"a", 2)
    table.add(0, b"b", 1)
    assert table.items == 3 and len(table) == 2
    assert table.invalidate(0, [b"a", b"b", b"zz"]) == {1: [b"a", b"b"], 2: [b"a"]}
    assert table.invalidate(0, [b"a"]) == {}
    assert table.items == 0 and len(table) == 0


def test_full_table_evicts_the_oldest_key_and_tells_its_readers() -> None:
    table = t.Table(2)
    assert table.add(0, b"a", 1) == {}
    assert table.add(1, b"b", 2) == {}
    assert table.add(0, b"c", 3) == {1: [b"a"]}
    assert table.evictions == 1 and len(table) == 2
    assert table.invalidate(0, [b"a"]) == {}


def test_flush_returns_the_shards_readers_only() -> None:
    table = t.Table(0)
    table.add(0, b"a", 1)
    table.add(1, b"b", 2)
    assert table.flush(0) == {1}
    assert table.flush(0) == set()
    assert table.invalidate(1, [b"b"]) == {2: [b"b"]}


def test_noloop_writer_is_spared() -> None:
    table = t.Table(0)
    table.add(0, b"a", 1)
    table.add(0, b"a", 2)
    table.forget_writer(b"a", 1)
    assert table.invalidate(0, [b"a"]) == {2: [b"a"]}


def test_optin_optout_caching_rule() -> None:
    default = t.ClientTracking()
    assert default.tracks_reads()
    optin = t.ClientTracking(optin=True)
    assert not optin.tracks_reads()
    assert t.caching(optin, [b"client", b"caching", b"yes"]) == t.OK
    assert optin.tracks_reads()
    optout = t.ClientTracking(optout=True)
    assert optout.tracks_reads()
    assert t.caching(optout, [b"client", b"caching", b"no"]) == t.OK
    assert not optout.tracks_reads()
    assert not t.ClientTracking(bcast=True).tracks_reads()


def test_bcast_prefixes_accumulate_and_match() -> None:
    on = t.parse_tracking([b"client", b"tracking", b"on", b"bcast", b"prefix", b"u:"], None, bool)
    assert isinstance(on, t.TrackingOn)
    now = t.enable(None, on)
    more = t.parse_tracking([b"client", b"tracking", b"on", b"bcast", b"prefix", b"a:"], now, bool)
    now = t.enable(now, more)  # type: ignore[arg-type]
    assert now.prefixes == [b"a:", b"u:"]
    assert t.bcast_keys(now, [b"u:1", b"x", b"a:2"]) == [b"u:1", b"a:2"]
    overlap = t.parse_tracking(
        [b"client", b"tracking", b"on", b"bcast", b"prefix", b"u"], now, bool
    )
    assert isinstance(overlap, bytes) and overlap.startswith(b"-ERR Prefix 'u' overlaps")


def test_encodings() -> None:
    assert t.invalidate_push([b"k"]) == b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n"
    assert t.invalidate_push(None) == b">2\r\n$10\r\ninvalidate\r\n_\r\n"
    assert t.invalidate_message([b"k"]) == (
        b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*1\r\n$1\r\nk\r\n"
    )
    assert t.redir_broken(7) == b">2\r\n$21\r\ntracking-redir-broken\r\n:7\r\n"
