"""The router's script cache: the Lua bodies it has seen, by SHA1, for the NOSCRIPT retry.

Pure, no I/O. Clients send a script's body with SCRIPT LOAD or EVAL/EVAL_RO
(`seen` records it, its SHA1 computed here as Redis does); later they send
only its SHA1 (EVALSHA). A shard that does not have it (a replica promoted
after the SCRIPT LOAD, a node restarted empty) answers ``-NOSCRIPT``; with
the body known the router loads it there and retries once
(router.wire.noscript). SCRIPT FLUSH through the router empties the cache as
well, so EVALSHA after it is NOSCRIPT, as on one server.

Bounded by total body bytes (``router.script_cache_bytes``), least recently
used first out: a body larger than the bound is not kept; a cache hit (a
retry) or a body seen again makes it the most recent. A body that fell out
gives the NOSCRIPT through, which redis-py's ``register_script`` answers with
EVAL (the body seen again).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

# Commands whose body the cache records, by spec name -> index of the body.
BODY_AT: dict[str, int] = {"eval": 1, "eval_ro": 1, "script|load": 2}
# Commands retried once after -NOSCRIPT when the body is known.
RETRIED = frozenset({"evalsha", "evalsha_ro"})
# Every command the client hands to this module.
SCRIPTED = frozenset({*BODY_AT, *RETRIED, "script|flush"})


def sha1_of(body: bytes) -> bytes:
    """The SHA1 Redis names a script by: lower-case hex."""
    return hashlib.sha1(body).hexdigest().encode()


class ScriptCache:
    """Script bodies by SHA1, at most ``limit`` bytes of them (given per call: the
    running config's bound, which a reload may change)."""

    __slots__ = ("_bodies", "size")

    def __init__(self) -> None:
        self._bodies: OrderedDict[bytes, bytes] = OrderedDict()
        self.size = 0  # bytes of bodies kept

    def __len__(self) -> int:
        return len(self._bodies)

    def add(self, body: bytes, limit: int) -> None:
        sha = sha1_of(body)
        if sha in self._bodies:
            self._bodies.move_to_end(sha)
        elif len(body) <= limit:
            self._bodies[sha] = body
            self.size += len(body)
        while self.size > limit:
            _, old = self._bodies.popitem(last=False)
            self.size -= len(old)

    def get(self, sha: bytes) -> bytes | None:
        """The body named ``sha`` (any case, as EVALSHA takes it), or None."""
        key = sha.lower()
        body = self._bodies.get(key)
        if body is not None:
            self._bodies.move_to_end(key)
        return body

    def clear(self) -> None:
        self._bodies.clear()
        self.size = 0

    def seen(self, name: str, args: list[bytes], limit: int) -> None:
        """Record what the request ``args`` of spec ``name`` (in `SCRIPTED`) tells:
        a body, or a SCRIPT FLUSH."""
        at = BODY_AT.get(name)
        if at is not None:
            self.add(args[at], limit)
        elif name == "script|flush":
            self.clear()
