"""The mover's pure decisions: who moves, the rate limiter, batching, router acks, progress."""

from __future__ import annotations

from sentinel.decide.migration import (
    Progress,
    Throttle,
    TokenBucket,
    lock_key,
    merge_routers,
    mover_of,
    near_bound,
    routers_behind,
    split,
    tmp_key,
    unknown_status,
    wanted,
)
from slotwarden.cluster.slots import key_hash_slot
from slotwarden.cluster.topology import Migration

M = Migration.of([(0, 99)], "a", "d")


def test_the_mover_is_the_lowest_id_among_the_alive() -> None:
    assert mover_of("s2", ["s3", "s1"]) == "s1"
    assert mover_of("s2", ["s3"]) == "s2"  # s1 not seen alive: s2 moves
    assert mover_of("s1", []) == "s1"


def test_unlimited_rate_never_waits() -> None:
    bucket = TokenBucket(0, 100, now=0.0)
    assert all(bucket.reserve(1000, now=0.0) == 0.0 for _ in range(100))


def test_token_bucket_caps_keys_per_second() -> None:
    """Whatever the request sizes, what is granted by time t (its wait paid off)
    never exceeds burst + rate * t."""
    rate, burst = 1000.0, 100.0
    bucket = TokenBucket(rate, burst, now=0.0)
    now = 0.0
    granted = 0
    for n in [100, 100, 50, 100, 300, 1, 100] * 20:
        now += bucket.reserve(n, now)  # sleep off the debt, then send
        granted += n
        assert granted <= burst + rate * now + 1e-6, (granted, now)
    # and it is not slower than the rate either: the last send came at (granted-burst)/rate
    assert abs(now - (granted - burst) / rate) < 1e-6


def test_token_bucket_refills_up_to_the_burst_only() -> None:
    bucket = TokenBucket(10.0, 5.0, now=0.0)
    assert bucket.reserve(5, now=0.0) == 0.0
    # an idle hour does not bank an hour of tokens
    assert bucket.reserve(5, now=3600.0) == 0.0
    assert bucket.reserve(5, now=3600.0) == 0.5  # 5 more at 10/s: half a second


def test_split_batches_small_keys_and_sets_big_ones_apart() -> None:
    sized = [(f"k{i}".encode(), 10) for i in range(7)]
    sized.insert(3, (b"big", 5000))
    sized.append((b"gone", None))
    out = split(sized, batch_keys=3, big_key_bytes=1000)
    assert out.big == (b"big",)
    assert out.batches == ((b"k0", b"k1", b"k2"), (b"k3", b"k4", b"k5"), (b"k6",))
    assert out.gone == 1
    # exactly big_key_bytes is still small (the design: "above big_key_bytes")
    assert split([(b"x", 1000)], 3, 1000).big == ()


def test_wanted_keeps_keys_of_migrating_slots_and_never_our_own() -> None:
    slots = M.slot_set()
    inside = next(k for k in (f"k{i}".encode() for i in range(10000)) if key_hash_slot(k) < 100)
    outside = next(k for k in (f"k{i}".encode() for i in range(10000)) if key_hash_slot(k) > 99)
    own = lock_key(inside)
    assert key_hash_slot(b"__slotwarden:lock:{" + inside + b"}") < 100
    assert wanted([inside, outside, own, b"__slotwarden:lock:{" + inside + b"}"], slots) == [inside]


def test_lock_and_tmp_key_names() -> None:
    assert lock_key(b"user:1") == b"__slotwarden:lock:user:1"
    assert tmp_key(b"s1-ab", b"user:1") == b"__slotwarden:tmp:s1-ab:user:1"


def test_routers_behind_and_the_union_of_views() -> None:
    merged = merge_routers(
        {"r1:1": 5, "r2:2": None},
        {"r2:2": 7, "r3:3": 3},
        {"r1:1": 4},
    )
    assert merged == {"r1:1": 5, "r2:2": 7, "r3:3": 3}
    assert routers_behind(merged, 5) == ["r3:3 at epoch 3"]
    assert routers_behind({"r:1": None}, 1) == ["r:1 at epoch ?"]
    assert routers_behind(merged, 3) == []


def test_progress_rate_eta_and_status_shape() -> None:
    p = Progress(M, since_epoch=12, mover="s1", started_at=1000.0)
    assert p.keys_left is None and p.eta(0.0) is None
    p.keys_total = 1000
    p.state = "moving"
    p.moved(0, 0, now=0.0)
    p.moved(100, 4000, now=1.0)
    p.moved(100, 4000, now=2.0, big=True)
    assert p.keys_left == 800
    assert p.rate(2.0) == 100.0
    assert p.eta(2.0) == 8.0
    status = p.to_status(2.0)
    assert status == {
        "slots": "0-99",
        "from": "a",
        "to": "d",
        "since_epoch": 12,
        "mover": "s1",
        "state": "moving",
        "waiting_for": [],
        "keys_total": 1000,
        "keys_moved": 200,
        "keys_left": 800,
        "bytes_moved": 8000,
        "big_keys_moved": 100,
        "errors": 0,
        "rate_keys_per_s": 100.0,
        "eta_s": 8.0,
        "started_at": 1000.0,
        "reason": None,
    }
    assert set(unknown_status(M, 12, "s1")) == set(status)


def test_progress_rate_looks_at_a_sliding_window() -> None:
    p = Progress(M, since_epoch=1, mover="s1", started_at=0.0)
    p.moved(1000, 0, now=0.0)
    p.moved(1000, 0, now=1.0)  # a fast start...
    for t in range(2, 60):
        p.moved(10, 0, now=float(t))  # ...then slow: the rate follows the recent past
    assert 9.0 <= p.rate(59.0) <= 11.0


def test_throttle_allows_once_per_interval() -> None:
    t = Throttle(10.0)
    assert t.allow("m", 0.0) and not t.allow("m", 9.9) and t.allow("m", 10.0)
    assert t.allow("other", 5.0)


def test_get_routers_answers_are_parsed_strictly() -> None:
    from sentinel.act.peers import parse_routers

    assert parse_routers({"routers": {"127.0.0.1:7780": 11, "h:1": None}}) == {
        "127.0.0.1:7780": 11,
        "h:1": None,
    }
    for bad in (None, [], {"routers": []}, {"routers": {"h:1": "11"}}, {"routers": {"h:1": True}}):
        assert parse_routers(bad) is None, bad


def test_only_sizes_near_the_bound_are_measured_exactly() -> None:
    assert not near_bound(100, 10000) and not near_bound(5000, 10000)
    assert near_bound(5001, 10000) and near_bound(10000, 10000) and near_bound(20000, 10000)
    assert not near_bound(20001, 10000)  # a huge key is big without walking it
