"""Names of the project's own keys that routers and sentinels both use: the request sets.

Owns `wanted_key`: the set on a migration's SOURCE master into which a router
adds the keys it waits for (big or locked keys, which only the sentinels'
mover moves: README *Resharding* → *What a client sees*), and from which the
mover pops them to move them next (`sentinel.act.prio`), ahead of its SCAN
pass. One set per migration, named by the lowest slot of the migration: the
slots of the migrations of a map never overlap, so the name is unique among
them, stable across ``preparing`` → ``moving``, and needs no shard name. A
set left by a migration that ended expires (`WANTED_TTL_MS` after the last
request); its keys, were a later migration to start at the same slot, would
only be looked at (a key not of its slots, or not on the source, is dropped).

Invariant: every name here starts with ``__slotwarden:``, so the mover never
moves it, KEYS/SCAN through the router never show it and nobody counts it as
data. Pure, no I/O.
"""

from __future__ import annotations

from slotwarden.cluster.topology import Migration

WANTED_PREFIX = b"__slotwarden:wanted:"
WANTED_TTL_MS = 60_000  # a router renews it with every request (PEXPIRE)


def wanted_key(migration: Migration) -> bytes:
    """``__slotwarden:wanted:<lowest slot>``: the request set of ``migration``."""
    lowest = migration.slots[0][0] if migration.slots else "none"  # sorted ranges
    return WANTED_PREFIX + str(lowest).encode()
