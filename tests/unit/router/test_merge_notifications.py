"""PUBSUB NUMSUB merged over the masters: keyspace-notification channels are subscribed on
every master (router.wire.subscriber), so their count is the largest, not the sum."""

from __future__ import annotations

from router.decide.merge import is_notification_channel, merge_numsub
from slotwarden.resp.encode import encode_array, encode_bulk, encode_int


def numsub(*pairs: tuple[bytes, int]) -> bytes:
    return encode_array([x for name, n in pairs for x in (encode_bulk(name), encode_int(n))])


def test_notification_channels_are_counted_once_per_subscriber():
    ev, ks, plain = b"__keyevent@0__:expired", b"__keyspace@0__:user:1", b"news"
    parts = [numsub((ev, 2), (ks, 1), (plain, 0)), numsub((ev, 2), (ks, 1), (plain, 3))]
    parts.append(numsub((ev, 1), (ks, 0), (plain, 4)))
    assert merge_numsub(parts) == numsub((ev, 2), (ks, 1), (plain, 7))


def test_which_channels_are_notification_channels():
    assert is_notification_channel(b"__keyevent@0__:del")
    assert is_notification_channel(b"__keyspace@0__:k")
    assert not is_notification_channel(b"keyevent")
    assert not is_notification_channel(b"__keyevent")
    assert not is_notification_channel(b"x__keyspace@0__:k")
