"""The router's script cache (router.decide.scripts): SHA1 as Redis names scripts, bounded
by bytes, least recently used first out, emptied by SCRIPT FLUSH."""

from __future__ import annotations

import hashlib

from router.decide.scripts import ScriptCache, sha1_of


def test_sha1_is_redis_naming_and_lookup_ignores_case() -> None:
    cache = ScriptCache()
    cache.seen("script|load", [b"SCRIPT", b"LOAD", b"return 1"], 100)
    sha = hashlib.sha1(b"return 1").hexdigest().encode()
    assert sha1_of(b"return 1") == sha
    assert cache.get(sha) == b"return 1"
    assert cache.get(sha.upper()) == b"return 1"
    cache.seen("eval", [b"EVAL", b"return 2", b"0"], 100)
    assert cache.get(sha1_of(b"return 2")) == b"return 2"
    cache.seen("evalsha", [b"EVALSHA", sha, b"0"], 100)  # names no body
    assert len(cache) == 2


def test_bounded_by_bytes_least_recently_used_out() -> None:
    cache = ScriptCache()
    a, b, c = b"a" * 40, b"b" * 40, b"c" * 40
    cache.add(a, 100)
    cache.add(b, 100)
    assert cache.get(sha1_of(a)) == a  # a is now the most recent
    cache.add(c, 100)  # 120 > 100: b goes
    assert cache.get(sha1_of(b)) is None
    assert cache.get(sha1_of(a)) == a and cache.get(sha1_of(c)) == c
    assert cache.size == 80
    cache.add(b"x" * 101, 100)  # larger than the bound: not kept, nothing evicted
    assert len(cache) == 2
    cache.add(a, 0)  # the bound lowered by a reload: everything goes
    assert len(cache) == 0 and cache.size == 0


def test_script_flush_empties_it() -> None:
    cache = ScriptCache()
    cache.add(b"return 1", 100)
    cache.seen("script|flush", [b"SCRIPT", b"FLUSH", b"ASYNC"], 100)
    assert len(cache) == 0 and cache.size == 0
