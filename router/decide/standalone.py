"""The router as a standalone master: ROLE and CLUSTER, answered by the router itself (LOCAL).

Pure. To its clients the router is one standalone Redis master without
replicas (its INFO says ``role:master``, ``cluster_enabled:0``):

- ``ROLE`` answers ``["master", 0, []]`` (valkey-glide and others ask it to
  find the primary);
- ``CLUSTER KEYSLOT key`` answers the key's hash slot (as any Redis computes it);
- the CLUSTER subcommands clients use to probe for cluster mode (INFO, NODES,
  SLOTS, SHARDS, MYID, LINKS, REPLICAS, SLAVES, COUNTKEYSINSLOT,
  GETKEYSINSLOT, HELP) answer what a standalone Redis 7.0 answers, ``-ERR This
  instance has cluster support disabled``, so a client that probes falls back
  to its standalone mode; the ones that change a cluster stay refused
  (REJECTED rows of the command table);
- ``READONLY``, ``READWRITE`` and ``ASKING`` (cluster-mode connection flags)
  answer that same error, as a standalone Redis 7.0.15 does.
"""

from __future__ import annotations

from collections.abc import Callable

from router.decide.session import Session
from slotwarden.resp.accel import key_slot
from slotwarden.resp.encode import encode_array, encode_bulk, encode_int, error_reply

CLUSTER_DISABLED = error_reply("ERR This instance has cluster support disabled")
PROBES = ("info", "nodes", "slots", "shards", "myid", "links", "replicas", "slaves",
          "countkeysinslot", "getkeysinslot", "help")  # fmt: skip


def role(s: Session, args: list[bytes]) -> bytes:
    return encode_array([encode_bulk(b"master"), encode_int(0), encode_array([])])


def cluster_keyslot(s: Session, args: list[bytes]) -> bytes:
    return encode_int(key_slot(args[2]))


def cluster_disabled(s: Session, args: list[bytes]) -> bytes:
    return CLUSTER_DISABLED


HANDLERS: dict[str, Callable[[Session, list[bytes]], bytes]] = {
    "role": role,
    "cluster|keyslot": cluster_keyslot,
    **{f"cluster|{name}": cluster_disabled for name in PROBES},
    "readonly": cluster_disabled,
    "readwrite": cluster_disabled,
    "asking": cluster_disabled,
}
