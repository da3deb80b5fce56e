"""redis-cli through the router in RESP2 and RESP3 (``-3``): the same input gives the same
output as against one real redis-server (transactions, scripts, blocking pops, errors,
subscriptions)."""

from __future__ import annotations

import subprocess

import pytest
import redis
from compat import plain_server, wait_for


@pytest.fixture(scope="module")
def plain(session_farm):
    yield from plain_server(session_farm)


def cli(port: int, protocol: int, stdin: str) -> str:
    args = ["redis-cli", "-p", str(port)] + (["-3"] if protocol == 3 else [])
    done = subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=30)
    return done.stdout + done.stderr


SESSION = """\
SET {cli}a 1
MULTI
INCR {cli}a
LPUSH {cli}l x y
PING
EXEC
MULTI
MULTI
EXEC
EXEC
DISCARD
EVAL "return {KEYS[1], ARGV[1], 7}" 1 {cli}a v
SCRIPT LOAD "return redis.call('get', KEYS[1])"
EVALSHA 4e6d8fc8c5ca5fb5ea2f1b51c23ea6b3e0bd9c4c 1 {cli}a
SCRIPT EXISTS 4e6d8fc8c5ca5fb5ea2f1b51c23ea6b3e0bd9c4c
BLPOP {cli}l 0
BRPOP {cli}empty 0.1
HGETALL {cli}nohash
HSET {cli}h f 1.5
HGETALL {cli}h
ZADD {cli}z 1.5 m
ZRANGE {cli}z 0 -1 WITHSCORES
GET
HELLO 4
DEL {cli}a {cli}l {cli}h {cli}z
"""


@pytest.mark.parametrize("protocol", [2, 3])
def test_redis_cli_session_matches_redis(fresh, plain, protocol) -> None:
    redis.Redis(port=plain.port).flushall()
    sha = redis.Redis(port=plain.port).script_load("return redis.call('get', KEYS[1])")
    session = SESSION.replace("4e6d8fc8c5ca5fb5ea2f1b51c23ea6b3e0bd9c4c", sha)
    ours = cli(fresh.port, protocol, session)
    assert ours == cli(plain.port, protocol, session)
    assert "ERR MULTI calls can not be nested" in ours
    assert "ERR EXEC without MULTI" in ours and "NOPROTO" in ours


@pytest.mark.parametrize("protocol", [2, 3])
def test_redis_cli_subscribe_receives_messages(fresh, plain, protocol, tmp_path) -> None:
    outputs = []
    for port in (fresh.port, plain.port):
        args = ["redis-cli", "-p", str(port)] + (["-3"] if protocol == 3 else [])
        output = tmp_path / f"cli-{port}.out"
        with output.open("w") as out_file:
            proc = subprocess.Popen(
                [*args, "SUBSCRIBE", "cli-ch", "cli-other"],
                stdout=out_file,
                stderr=subprocess.STDOUT,
                text=True,
            )
        try:
            publisher = redis.Redis(port=port)
            wait_for(lambda p=publisher: p.pubsub_numsub("cli-other")[0][1] == 1, "subscribed")
            assert publisher.publish("cli-ch", "hello") == 1
            assert publisher.publish("cli-other", "world") == 1
            # until redis-cli has printed the last message (was: a 0.3 s sleep, which a
            # loaded machine could end before redis-cli printed it)
            wait_for(lambda o=output: "world" in o.read_text(), "redis-cli to print 'world'")
        finally:
            proc.terminate()
            proc.wait(timeout=10)
        outputs.append(output.read_text())
    assert outputs[0] == outputs[1]
    assert "hello" in outputs[0] and "world" in outputs[0]
