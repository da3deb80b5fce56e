"""Splitting a multi-key request by shard: `group_keys_py`, the reference for C ``group_keys``.

Pure byte work (slot hashing and re-encoding), no I/O. Callers use
`slotwarden.resp.accel.group_keys`, which is C when built and this otherwise.
"""

from __future__ import annotations

from binascii import crc_hqx

from slotwarden.cluster.slots import key_hash_slot
from slotwarden.resp.encode import encode_command

# One shard's index (every key is there), or [(shard, piece, key_indexes)].
Grouped = int | list[tuple[int, bytes, list[int]]]


def group_keys_py(args: list[bytes], step: int, owner: bytes) -> Grouped:
    """The keys at ``args[1::step]`` (each followed by ``step - 1`` values) split by
    the shard that owns them: that shard's index when there is one, else
    ``[(shard, piece, key_indexes)]`` in order of each shard's first key, where
    ``piece`` is the command re-encoded with that shard's keys (and values) and
    ``key_indexes`` the argument positions - 1 of those keys (for MGET: where
    each value goes in the merged reply). The reference for
    C ``group_keys``."""
    groups: dict[int, list[int]] = {}  # shard -> argument indices of its keys
    for pos in range(1, len(args), step):
        key = args[pos]
        slot = key_hash_slot(key) if b"{" in key else crc_hqx(key, 0) & 16383
        shard = owner[slot]
        group = groups.get(shard)
        if group is None:
            groups[shard] = [pos]
        else:
            group.append(pos)
    if len(groups) == 1:
        return next(iter(groups))
    name = args[0]
    out: list[tuple[int, bytes, list[int]]] = []
    for shard, positions in groups.items():
        piece = [name]
        for pos in positions:
            piece += args[pos : pos + step]
        out.append((shard, encode_command(piece), [pos - 1 for pos in positions]))
    return out
