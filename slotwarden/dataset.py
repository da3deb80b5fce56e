"""Mixed-type data sets for the resharding test and bench: load, write, read, verify.

Owns what `tests/integration/test_resharding.py` and `bench/reshard.py` share about
the DATA (the processes are `slotwarden.procs` and `slotwarden.rig`): key ``i`` of a
set of N is ``rs:<i>`` of type ``TYPES[i % 6]`` (string, hash, list, set, zset,
stream); half of each type has a TTL (`TTL_MS`); with ``big_every`` one key in that
many is a hash of `BIG_FIELDS` fields (a "big key" once ``big_key_bytes`` is below
its size). Every key carries a **version**: 0 when loaded, and each write through
`write_op` stores version n+1 in a way each type can read back (`VERSION_READ`).

`Model` is the client-side truth: per key the contents the acknowledged writes
produced (and, for a key whose write got an error, both possible contents: such a
key is no longer written). `Writer` and `Reader` are threads doing that through a
router while shards change under them; the reader checks that no key ever reads
missing or older than its last acknowledged version. `verify_contents` compares
every key with the model, `placement` scans every master.

Invariant: nothing here starts or stops a process; every client call has a timeout
(the clients are made by the caller, with ``socket_timeout``).
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from slotwarden.cluster.slots import key_hash_slot

TYPES = ("string", "hash", "list", "set", "zset", "stream")
TTL_MS = 3_600_000  # long enough never to expire during a run; checked never to grow
BIG_FIELDS = 400  # fields of a big hash (~20 KB with MEMORY USAGE)
OWN_PREFIX = b"__slotwarden:"  # the project's own keys (locks, temp keys): not data
LOAD_BATCH = 500
STREAM_PLUS_ONE = "stream+1"  # Model.uncertain of a stream: maybe one entry more


def key_name(i: int) -> bytes:
    return b"rs:%d" % i


def key_index(key: bytes) -> int:
    return int(key[3:])


def key_type(i: int) -> str:
    return TYPES[i % len(TYPES)]


def has_ttl(i: int) -> bool:
    return (i // len(TYPES)) % 2 == 0


def is_big(i: int, big_every: int) -> bool:
    return big_every > 0 and i % big_every == 1 and key_type(i) == "hash"


def initial(i: int, big_every: int = 0) -> Any:
    """The contents key ``i`` is loaded with, in the canonical form `canonical` reads."""
    t = key_type(i)
    if t == "string":
        return b"init:%d" % i
    if t == "hash":
        fields = {b"ver": b"0", b"f0": b"x%d" % i}
        if is_big(i, big_every):
            fields.update({b"big%d" % n: b"%032d" % n for n in range(BIG_FIELDS)})
        return fields
    if t == "list":
        return [b"i%d" % i, b"0"]
    if t == "set":
        return frozenset({b"0", b"s%d" % i})
    if t == "zset":
        return ((b"z%d" % i, 0.0),)
    return ((b"0-1", ((b"ver", b"0"),)),)


def _write_initial(pipe: Any, i: int, big_every: int) -> None:
    key, value, t = key_name(i), initial(i, big_every), key_type(i)
    if t == "string":
        pipe.set(key, value)
    elif t == "hash":
        pipe.hset(key, mapping=value)
    elif t == "list":
        pipe.rpush(key, *value)
    elif t == "set":
        pipe.sadd(key, *sorted(value))
    elif t == "zset":
        pipe.zadd(key, dict(value))
    else:
        pipe.xadd(key, dict(value[0][1]), id=value[0][0])
    if has_ttl(i):
        pipe.pexpire(key, TTL_MS)


def load(make_pipeline: Callable[[], Any], indices: Iterable[int], big_every: int = 0) -> None:
    """Write the initial contents of ``indices`` (pipelined, non-transactional batches
    from ``make_pipeline()``: a redis-py Redis or RedisCluster pipeline)."""
    pipe, n = make_pipeline(), 0
    for i in indices:
        pipe.delete(key_name(i))
        _write_initial(pipe, i, big_every)
        n += 1
        if n % LOAD_BATCH == 0:
            pipe.execute()
            pipe = make_pipeline()
    pipe.execute()


# -- writes and versions ------------------------------------------------------


def write_op(client: Any, i: int, version: int) -> Any:
    """Store ``version`` in key ``i`` (one command; keeps the TTL); the reply."""
    key, t = key_name(i), key_type(i)
    if t == "string":
        return client.set(key, b"v:%d" % version, keepttl=True)
    if t == "hash":
        return client.hset(key, mapping={b"ver": version, b"f%d" % (version % 3): version})
    if t == "list":
        return client.rpush(key, version)
    if t == "set":
        return client.sadd(key, version)
    if t == "zset":
        return client.zadd(key, {b"m%d" % (version % 5): version})
    return client.xadd(key, {b"ver": version})


def apply_op(i: int, state: Any, version: int, reply: Any) -> Any:
    """The contents after `write_op` (``reply``: its reply; a stream entry's id)."""
    t, v = key_type(i), b"%d" % version
    if t == "string":
        return b"v:" + v
    if t == "hash":
        return {**state, b"ver": v, b"f%d" % (version % 3): v}
    if t == "list":
        return [*state, v]
    if t == "set":
        return state | {v}
    if t == "zset":
        scores = dict(state)
        scores[b"m%d" % (version % 5)] = float(version)
        return tuple(sorted(scores.items(), key=lambda kv: (kv[1], kv[0])))
    return (*state, (reply, ((b"ver", v),)))


def read_version(client: Any, i: int) -> int:
    """The version key ``i`` holds now; -1 when the key is missing."""
    key, t = key_name(i), key_type(i)
    if t == "string":
        raw = client.get(key)
        return -1 if raw is None else (0 if raw.startswith(b"init:") else int(raw[2:]))
    if t == "hash":
        raw = client.hget(key, b"ver")
        return -1 if raw is None else int(raw)
    if t == "list":
        raw = client.lindex(key, -1)
        return -1 if raw is None else int(raw)
    if t == "set":
        members = client.smembers(key)
        return max((int(m) for m in members if m.isdigit()), default=-1)
    if t == "zset":
        top = client.zrevrange(key, 0, 0, withscores=True)
        return int(top[0][1]) if top else -1
    last = client.xrevrange(key, count=1)
    return int(last[0][1][b"ver"]) if last else -1


def canonical(client: Any, keys: Sequence[bytes]) -> dict[bytes, tuple[Any, int]]:
    """``{key: (contents in canonical form or None, PTTL)}`` read with one pipeline."""
    pipe = client.pipeline(transaction=False)
    for key in keys:
        t = key_type(key_index(key))
        if t == "string":
            pipe.get(key)
        elif t == "hash":
            pipe.hgetall(key)
        elif t == "list":
            pipe.lrange(key, 0, -1)
        elif t == "set":
            pipe.smembers(key)
        elif t == "zset":
            pipe.zrange(key, 0, -1, withscores=True)
        else:
            pipe.xrange(key)
        pipe.pttl(key)
    replies = pipe.execute(raise_on_error=False)
    out: dict[bytes, tuple[Any, int]] = {}
    for n, key in enumerate(keys):
        raw, pttl = replies[2 * n], replies[2 * n + 1]
        t = key_type(key_index(key))
        if isinstance(raw, Exception):
            value: Any = raw
        elif t == "string":
            value = raw
        elif t == "hash":
            value = raw or None
        elif t == "list":
            value = raw or None
        elif t == "set":
            value = frozenset(raw) or None
        elif t == "zset":
            value = tuple(sorted(((m, float(s)) for m, s in raw), key=lambda kv: (kv[1], kv[0])))
            value = value or None
        else:
            value = tuple((eid, tuple(sorted(f.items()))) for eid, f in raw) or None
        out[key] = (value, pttl)
    return out


# -- the model ------------------------------------------------------------------


@dataclass
class Model:
    """Per key: its version and contents as the acknowledged writes left them."""

    n: int
    big_every: int = 0
    loaded_at: float = field(default_factory=time.time)
    version: list[int] = field(default_factory=list)
    contents: dict[int, Any] = field(default_factory=dict)
    uncertain: dict[int, Any] = field(default_factory=dict)  # i -> the other possible contents
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.version = [0] * self.n
        self.contents = {i: initial(i, self.big_every) for i in range(self.n)}

    def expected(self, i: int) -> list[Any]:
        """The contents key ``i`` may hold (a stream's "one entry more" is checked apart)."""
        out = [self.contents[i]]
        maybe = self.uncertain.get(i)
        if maybe is not None and not (isinstance(maybe, tuple) and maybe[:1] == (STREAM_PLUS_ONE,)):
            out.append(maybe)
        return out


def _normal(i: int, value: Any) -> Any:
    """Model contents in `canonical`'s form (streams: fields as sorted tuples)."""
    if key_type(i) == "stream":
        return tuple((eid, tuple(sorted(dict(f).items()))) for eid, f in value)
    return value


def _one_more_entry(i: int, model: Model, value: Any) -> bool:
    """A stream whose last write failed: the acked entries and one with that version."""
    maybe = model.uncertain.get(i)
    if not (isinstance(maybe, tuple) and maybe[:1] == (STREAM_PLUS_ONE,)):
        return False
    acked = _normal(i, model.contents[i])
    extra = ((b"ver", b"%d" % maybe[1]),)
    return len(value) == len(acked) + 1 and value[:-1] == acked and value[-1][1] == extra


def verify_contents(
    client: Any,
    model: Model,
    label: str,
    indices: Sequence[int] | None = None,
    batch: int = 1000,
) -> list[str]:
    """Every key of ``model`` (or those of ``indices``) as ``client`` reads it: missing,
    wrong contents, a TTL lost, gained or grown. One line per problem (at most 20, then a
    count)."""
    problems: list[str] = []
    # a TTL only shrinks: at most what was set, minus the time since, plus clock slack
    ttl_ceiling = TTL_MS - int((time.time() - model.loaded_at) * 1000) + 2000
    every = list(range(model.n) if indices is None else indices)
    count = 0
    for start in range(0, len(every), batch):
        part = every[start : start + batch]
        got = canonical(client, [key_name(i) for i in part])
        for i in part:
            value, pttl = got[key_name(i)]
            wanted = [_normal(i, e) for e in model.expected(i)]
            problem = None
            if value is None:
                problem = "missing"
            elif value not in wanted and not _one_more_entry(i, model, value):
                problem = f"contents {str(value)[:80]} != {str(wanted[0])[:80]}"
            elif has_ttl(i) and not 0 < pttl <= ttl_ceiling:
                problem = f"PTTL {pttl} (want 0 < PTTL <= {ttl_ceiling})"
            elif not has_ttl(i) and pttl != -1:
                problem = f"PTTL {pttl} on a key without TTL"
            if problem:
                count += 1
                if len(problems) < 20:
                    problems.append(f"{label}: {key_name(i).decode()} ({key_type(i)}): {problem}")
    if count > len(problems):
        problems.append(f"{label}: ... {count} keys wrong in all")
    return problems


def scan_keys(client: redis.Redis) -> set[bytes]:
    """Every data key of one node (the project's own ``__slotwarden:`` keys left out)."""
    return {k for k in client.scan_iter(count=1000) if not k.startswith(OWN_PREFIX)}


def placement(masters: dict[str, redis.Redis], owner_of: Callable[[int], str], n: int) -> list[str]:
    """Scan every master (name -> client): each data key ``rs:<i>`` of the set lives on
    exactly one, the one ``owner_of(slot)`` names, and every key of the set is somewhere.
    Keys outside the set are ignored (probes). One line per problem (capped)."""
    where: dict[bytes, list[str]] = {}
    for name, client in masters.items():
        for key in scan_keys(client):
            if key.startswith(b"rs:") and key[3:].isdigit() and int(key[3:]) < n:
                where.setdefault(key, []).append(name)
    problems = []
    twice = [(k, v) for k, v in where.items() if len(v) > 1]
    if twice:
        sample = ", ".join(f"{k.decode()} on {'+'.join(v)}" for k, v in twice[:5])
        problems.append(f"{len(twice)} keys live on two shards: {sample}")
    misplaced = [
        (k, v[0], owner_of(key_hash_slot(k)))
        for k, v in where.items()
        if len(v) == 1 and v[0] != owner_of(key_hash_slot(k))
    ]
    if misplaced:
        sample = ", ".join(f"{k.decode()} on {a} (owner {b})" for k, a, b in misplaced[:5])
        problems.append(f"{len(misplaced)} keys not on their slot's owner: {sample}")
    if len(where) != n:
        problems.append(f"{n - len(where)} of {n} keys are on no master")
    return problems


# -- client threads -------------------------------------------------------------


def error_kind(exc: BaseException) -> str:
    """``TRYAGAIN``, ``CLUSTERDOWN``, ``ERR``... (the Redis error's code: redis-py strips the
    codes it knows from the text and keeps them as ``status_code``), or the exception's
    class name (a timeout, a closed connection)."""
    code = getattr(exc, "status_code", None)
    if code:
        return str(code)
    if isinstance(exc, redis.ResponseError):
        return (str(exc).split() or ["ERR"])[0]
    return type(exc).__name__


@dataclass
class ClientError:
    at: float  # time.monotonic()
    kind: str
    text: str
    key: int


class _Loop(threading.Thread):
    def __init__(self, client: Any, model: Model, keys: Sequence[int], seed: int) -> None:
        super().__init__(daemon=True)
        self.client, self.model, self.keys = client, model, list(keys)
        self.rng = random.Random(seed)
        self.done = threading.Event()
        self.ops = 0
        self.errors: list[ClientError] = []

    def stop(self) -> None:
        self.done.set()
        self.join(timeout=30)
        with contextlib.suppress(Exception):
            self.client.close()

    def error(self, exc: BaseException, i: int) -> None:
        kind = error_kind(exc)
        self.errors.append(ClientError(time.monotonic(), kind, f"{kind} {str(exc)[:200]}", i))
        time.sleep(0.005)


class Writer(_Loop):
    """Writes `write_op` to random keys of ``keys``; the model records what was acked.
    A key whose write failed keeps both possible contents and is written no more."""

    def run(self) -> None:
        m = self.model
        while not self.done.is_set():
            i = self.rng.choice(self.keys)
            with m.lock:
                if i in m.uncertain:
                    continue
                version = m.version[i] + 1
            try:
                reply = write_op(self.client, i, version)
            except (redis.RedisError, OSError) as exc:
                with m.lock:
                    # a stream entry's id is unknown: one more entry with this version
                    m.uncertain[i] = (
                        (STREAM_PLUS_ONE, version)
                        if key_type(i) == "stream"
                        else apply_op(i, m.contents[i], version, None)
                    )
                self.error(exc, i)
                continue
            with m.lock:
                m.contents[i] = apply_op(i, m.contents[i], version, reply)
                m.version[i] = version
            self.ops += 1


class Reader(_Loop):
    """Reads the version of random keys of ``keys``: never missing, never older than the
    version acknowledged before the read was sent (`stale` lists those that were)."""

    def __init__(self, client: Any, model: Model, keys: Sequence[int], seed: int) -> None:
        super().__init__(client, model, keys, seed)
        self.stale: list[str] = []

    def run(self) -> None:
        while not self.done.is_set():
            i = self.rng.choice(self.keys)
            floor = self.model.version[i]
            try:
                got = read_version(self.client, i)
            except (redis.RedisError, OSError) as exc:
                self.error(exc, i)
                continue
            self.ops += 1
            if got < floor and len(self.stale) < 100:
                what = "missing" if got < 0 else f"version {got}"
                self.stale.append(f"{key_name(i).decode()}: {what}, acked {floor} before")
