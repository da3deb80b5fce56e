"""Diagnostics for the whole cluster: SLOWLOG, LATENCY and MEMORY replies of every master, merged.

Pure, no I/O. The command table names these mergers (``merger`` column of
SLOWLOG GET, LATENCY LATEST/HISTORY/DOCTOR, MEMORY DOCTOR/STATS); each is
made per request (`build`), because it needs the shard names (and SLOWLOG
GET its count). SLOWLOG LEN/RESET and LATENCY RESET use the plain ``sum`` and
``all-ok`` mergers of router.decide.merge. As there, the first error (in shard
order) is the answer.

- SLOWLOG GET [n]: every master's newest n entries, newest first, at most n
  (default 10, negative: all); each entry keeps Redis's shape, its client-name
  field (the router's own connection otherwise) names the shard. Entries of
  the same second (Redis's resolution) are ordered by their id, highest first:
  each shard's own order is kept, and an entry made after a SLOWLOG RESET the
  router sent to every master comes before every shard's RESET entry.
- LATENCY LATEST: every master's events, each named ``<shard>:<event>``.
- LATENCY HISTORY event: every master's samples of the event, by time.
- LATENCY DOCTOR, MEMORY DOCTOR: each shard's text under ``=== shard <name> ===``.
- MEMORY STATS: integer fields (bytes, counts, the ``db.N`` overheads) summed;
  the ratios and percentages Redis derives from them recomputed from the sums
  (`_RECOMPUTED`); any other number the largest shard's (the worst); text the
  masters' when they agree, else ``mixed``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import hiredis

from slotwarden.resp.encode import NIL, NULL3, encode_array, encode_bulk, encode_int, error_reply

Merger = Callable[[list[bytes]], bytes]


def decode(raw: bytes) -> object:
    reader = hiredis.Reader()
    reader.feed(raw)
    return reader.gets()


def encode(value: object, resp3: bool) -> bytes:
    """A decoded reply back to RESP (RESP3 types only when ``resp3``)."""
    if value is None:
        return NULL3 if resp3 else NIL
    if isinstance(value, bool):
        return (b"#t\r\n" if value else b"#f\r\n") if resp3 else encode_int(int(value))
    if isinstance(value, int):
        return encode_int(value)
    if isinstance(value, float):
        text = repr(value).encode()
        return b",%b\r\n" % text if resp3 else encode_bulk(text)
    if isinstance(value, bytes):
        return encode_bulk(value)
    if isinstance(value, str):  # a RESP3 verbatim string
        data = value.encode()
        return b"=%d\r\ntxt:%b\r\n" % (len(data) + 4, data) if resp3 else encode_bulk(data)
    if isinstance(value, dict):
        items = [encode(x, resp3) for pair in value.items() for x in pair]
        return b"%%%d\r\n" % len(value) + b"".join(items) if resp3 else encode_array(items)
    if isinstance(value, list | tuple):
        return encode_array([encode(x, resp3) for x in value])
    if isinstance(value, hiredis.ReplyError):
        return error_reply(str(value))
    return error_reply(f"ERR router cannot re-encode {type(value).__name__}")


def _unexpected(raw: bytes, want: str, shard: str) -> bytes:
    return error_reply(f"ERR router expected {want} from shard {shard}, got {raw[:60]!r}")


def _decoded(
    parts: list[bytes], names: Sequence[str], kind: type | tuple[type, ...], want: str
) -> list[object] | bytes:
    """Every part decoded, or the first error / an 'unexpected' error."""
    for raw in parts:
        if raw[:1] == b"-":
            return raw
    out: list[object] = []
    for raw, name in zip(parts, names, strict=False):
        value = decode(raw)
        if not isinstance(value, kind):
            return _unexpected(raw, want, name)
        out.append(value)
    return out


def _int_arg(raw: bytes) -> int | None:
    try:
        return int(raw)
    except ValueError:
        return None


def slowlog_get(args: Sequence[bytes], names: Sequence[str]) -> Merger:
    count = 10 if len(args) < 3 else _int_arg(args[2])

    def merge(parts: list[bytes]) -> bytes:
        values = _decoded(parts, names, list, "a SLOWLOG GET array")
        if isinstance(values, bytes):
            return values
        entries: list[tuple[int, int, list[object]]] = []
        for shard, (name, value) in enumerate(zip(names, values, strict=False)):
            for entry in value:  # type: ignore[attr-defined]
                if not (isinstance(entry, list) and len(entry) >= 4 and type(entry[1]) is int):
                    return _unexpected(parts[shard], "SLOWLOG entries", name)
                entry = list(entry)
                if len(entry) >= 6:
                    entry[5] = name.encode()
                ident = entry[0] if type(entry[0]) is int else 0
                entries.append((-entry[1], -ident, shard, entry))
        entries.sort(key=lambda e: (e[0], e[1], e[2]))
        kept = entries if count is None or count < 0 else entries[:count]
        return encode_array([encode(e, False) for _, _, _, e in kept])

    return merge


def latency_latest(args: Sequence[bytes], names: Sequence[str]) -> Merger:
    def merge(parts: list[bytes]) -> bytes:
        values = _decoded(parts, names, list, "a LATENCY LATEST array")
        if isinstance(values, bytes):
            return values
        out: list[list[object]] = []
        for name, value in zip(names, values, strict=False):
            for entry in value:  # type: ignore[attr-defined]
                if isinstance(entry, list) and entry and isinstance(entry[0], bytes):
                    out.append([name.encode() + b":" + entry[0], *entry[1:]])
        return encode_array([encode(e, False) for e in out])

    return merge


def latency_history(args: Sequence[bytes], names: Sequence[str]) -> Merger:
    def merge(parts: list[bytes]) -> bytes:
        values = _decoded(parts, names, list, "a LATENCY HISTORY array")
        if isinstance(values, bytes):
            return values
        samples: list[list[object]] = []
        for value in values:
            samples += [s for s in value if isinstance(s, list) and s]  # type: ignore[attr-defined]
        samples.sort(key=lambda s: s[0] if type(s[0]) is int else 0)
        return encode_array([encode(s, False) for s in samples])

    return merge


def doctor(args: Sequence[bytes], names: Sequence[str]) -> Merger:
    def merge(parts: list[bytes]) -> bytes:
        values = _decoded(parts, names, (bytes, str), "a report")
        if isinstance(values, bytes):
            return values
        texts: list[str] = []
        for name, value in zip(names, values, strict=False):
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
            texts.append(f"=== shard {name} ===\n{text.rstrip()}\n")
        report = "\n".join(texts)
        verbatim = any(raw[:1] == b"=" for raw in parts)
        return encode(report, True) if verbatim else encode_bulk(report.encode())

    return merge


def _pairs(value: object) -> list[tuple[object, object]] | None:
    """A map reply (RESP3 dict, RESP2 flat array) as (name, value) pairs."""
    if isinstance(value, dict):
        return list(value.items())
    if isinstance(value, list) and len(value) % 2 == 0:
        return list(zip(value[0::2], value[1::2], strict=True))
    return None


def _number(value: object) -> int | float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, bytes):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _ratio(top: float, bottom: float, scale: float = 1.0) -> float:
    return top * scale / bottom if bottom else 0.0


# MEMORY STATS fields Redis derives from others: recomputed from the sums.
_RECOMPUTED: dict[bytes, Callable[[dict[bytes, float]], float]] = {
    b"keys.bytes-per-key": lambda s: (
        (s[b"total.allocated"] - s[b"startup.allocated"]) // s[b"keys.count"]
        if s.get(b"keys.count")
        else 0
    ),
    b"dataset.percentage": lambda s: _ratio(
        s[b"dataset.bytes"], s[b"total.allocated"] - s[b"startup.allocated"], 100
    ),
    b"peak.percentage": lambda s: _ratio(s[b"total.allocated"], s[b"peak.allocated"], 100),
    b"allocator-fragmentation.ratio": lambda s: _ratio(
        s[b"allocator.active"], s[b"allocator.allocated"]
    ),
    b"allocator-rss.ratio": lambda s: _ratio(s[b"allocator.resident"], s[b"allocator.active"]),
    b"rss-overhead.ratio": lambda s: _ratio(
        s[b"rss-overhead.bytes"] + s[b"allocator.resident"], s[b"allocator.resident"]
    ),
    b"fragmentation": lambda s: _ratio(
        s[b"fragmentation.bytes"] + s[b"total.allocated"], s[b"total.allocated"]
    ),
}


def _merge_map(maps: list[list[tuple[object, object]]]) -> list[tuple[object, object]]:
    """Field by field: integers summed, nested maps merged, other numbers the largest,
    text the same or ``mixed``; then `_RECOMPUTED`."""
    order: dict[object, None] = {}
    for pairs in maps:
        order.update(dict.fromkeys(k for k, _ in pairs))
    as_dicts = [dict(pairs) for pairs in maps]
    out: list[tuple[object, object]] = []
    sums: dict[bytes, float] = {}
    for key in order:
        values = [d[key] for d in as_dicts if key in d]
        nested = [_pairs(v) for v in values]
        if all(type(v) is int for v in values):
            merged: object = sum(values)  # type: ignore[arg-type]
        elif all(isinstance(v, dict | list) for v in values) and all(n is not None for n in nested):
            inner = _merge_map([n for n in nested if n is not None])
            merged = dict(inner) if isinstance(values[0], dict) else [x for p in inner for x in p]
        elif all(_number(v) is not None for v in values):
            merged = max(values, key=lambda v: _number(v) or 0)
        else:
            merged = values[0] if all(v == values[0] for v in values) else b"mixed"
        n = _number(merged)
        if isinstance(key, bytes) and n is not None:
            sums[key] = n
        out.append((key, merged))
    result: list[tuple[object, object]] = []
    for key, value in out:
        rule = _RECOMPUTED.get(key) if isinstance(key, bytes) else None
        if rule is not None:
            try:
                number = rule(sums)
            except KeyError:
                number = None
            if number is not None:
                if type(value) is int:
                    value = int(number)
                elif isinstance(value, float):
                    value = float(number)
                elif isinstance(value, bytes):
                    value = repr(float(number)).encode()
        result.append((key, value))
    return result


def memory_stats(args: Sequence[bytes], names: Sequence[str]) -> Merger:
    def merge(parts: list[bytes]) -> bytes:
        values = _decoded(parts, names, (list, dict), "a MEMORY STATS map")
        if isinstance(values, bytes):
            return values
        maps = [_pairs(v) for v in values]
        if any(m is None for m in maps):
            return _unexpected(parts[0], "a MEMORY STATS map", names[0] if names else "0")
        merged = _merge_map([m for m in maps if m is not None])
        resp3 = parts[0][:1] in (b"%",)
        if resp3:
            return encode(dict(merged), True)
        return encode([x for pair in merged for x in pair], False)

    return merge


# Merger names (the table's ``merger`` column) -> maker(args, shard names).
BUILT: dict[str, Callable[[Sequence[bytes], Sequence[str]], Merger]] = {
    "slowlog-get": slowlog_get,
    "latency-latest": latency_latest,
    "latency-history": latency_history,
    "doctor": doctor,
    "memory-stats": memory_stats,
}


def build(name: str, args: Sequence[bytes], names: Sequence[str]) -> Merger:
    return BUILT[name](args, names)
