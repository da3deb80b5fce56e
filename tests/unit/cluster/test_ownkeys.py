"""slotwarden.cluster.ownkeys: the request set's name, shared by routers and the mover."""

from __future__ import annotations

from slotwarden.cluster.ownkeys import WANTED_PREFIX, wanted_key
from slotwarden.cluster.topology import Migration


def test_wanted_key_is_named_by_the_lowest_slot_and_stays_across_states() -> None:
    m = Migration.of([(500, 600), (7, 9)], "a", "d", "preparing")
    assert wanted_key(m) == b"__slotwarden:wanted:7"
    assert wanted_key(m.with_state("moving")) == wanted_key(m)
    assert wanted_key(Migration.of([(0, 99)], "b", "c")) == b"__slotwarden:wanted:0"
    assert WANTED_PREFIX.startswith(b"__slotwarden:")  # skipped by the mover, hidden by KEYS
