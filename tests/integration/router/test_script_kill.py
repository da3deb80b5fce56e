"""SCRIPT KILL / FUNCTION KILL through the router stop a busy script (issue 12, item 4).

They go to every master on a side connection of their own, never queued behind the
busy script on the shared pipelined connection; the client running the script gets
Redis's "Script killed by user" error, and the commands queued behind the script on
the shared connection are answered once it is killed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import redis
from compat import Raw, in_thread, keys_on_every_shard, wait_for
from conftest import Cluster, own_cluster

SPIN = "local i = 0 while true do i = i + 1 end"
LIBRARY = """#!lua name=spinlib
redis.register_function{function_name='spin', callback=function(keys, args)
  local i = 0 while true do i = i + 1 end end, flags={'no-writes'}}
"""


@pytest.fixture(scope="module")
def busy_cluster() -> Iterator[Cluster]:
    # a command_timeout well above the time the test needs to kill the script
    with own_cluster(extra_router={"command_timeout_ms": 8000}) as c:
        for i in range(len(c.masters)):
            c.shard_client(i).config_set("busy-reply-threshold", 50)
        yield c


def _busy(c: Cluster, shard: int) -> bool:
    with Raw(c.masters[shard].port) as raw:
        return raw.call("PING").startswith(b"-BUSY")


def _kill_directly(c: Cluster) -> None:
    for i in range(len(c.masters)):
        for kill in ("SCRIPT", "FUNCTION"):
            try:
                c.shard_client(i).execute_command(kill, "KILL")
            except redis.RedisError:
                pass


def _stop_busy(c: Cluster, start: Callable[[], object], kill: Callable[[redis.Redis], object]):
    key = keys_on_every_shard(c, prefix="busy")[1][0]  # a key of shard 1
    c.client().set(key, "before")
    runner, ran = in_thread(lambda: start())
    try:
        wait_for(lambda: _busy(c, 1), "the script to be busy on shard 1")
        # another client's command queued behind the script on the shared connection
        queued, got = in_thread(lambda: c.client().get(key))
        killer = c.client()
        assert kill(killer) in (True, b"OK")  # +OK: shard 1 killed its script
        runner.join(10)
        queued.join(10)
    finally:
        _kill_directly(c)
    assert len(ran) == 1 and isinstance(ran[0], redis.ResponseError), ran
    assert "Script killed by user" in str(ran[0])
    assert got == [b"before"]  # answered once the script was killed, not timed out
    r = c.client()
    assert r.set(key, "after") and r.get(key) == b"after"  # the shard works again
    with pytest.raises(redis.ResponseError, match=r"NOTBUSY No scripts in execution right now\."):
        kill(r)


def test_script_kill_stops_a_busy_eval(busy_cluster: Cluster) -> None:
    c = busy_cluster
    key = keys_on_every_shard(c, prefix="busy")[1][0]
    _stop_busy(c, lambda: c.client().eval(SPIN, 1, key), lambda r: r.script_kill())


def test_function_kill_stops_a_busy_function(busy_cluster: Cluster) -> None:
    c = busy_cluster
    key = keys_on_every_shard(c, prefix="busy")[1][0]
    c.client().function_load(LIBRARY, replace=True)
    _stop_busy(
        c,
        lambda: c.client().fcall("spin", 1, key),
        lambda r: r.execute_command("FUNCTION", "KILL"),
    )


def test_script_kill_with_nothing_running_is_notbusy(busy_cluster: Cluster) -> None:
    r = busy_cluster.client()
    with pytest.raises(redis.ResponseError, match="NOTBUSY"):
        r.script_kill()
    with pytest.raises(redis.ResponseError, match="NOTBUSY"):
        r.execute_command("FUNCTION", "KILL")


def test_a_script_outliving_command_timeout_busy_is_passed_through_then_killed() -> None:
    """The shared connection times out behind a script that runs past command_timeout
    (the client gets -CLUSTERDOWN ... timed out), the reconnected connection passes
    the shard's -BUSY through, and SCRIPT KILL on the side connection recovers it."""
    with own_cluster(extra_router={"command_timeout_ms": 300}) as c:
        for i in range(len(c.masters)):
            c.shard_client(i).config_set("busy-reply-threshold", 20)
        key = keys_on_every_shard(c, prefix="busy")[1][0]
        runner, ran = in_thread(lambda: c.client().eval(SPIN, 1, key))
        try:
            runner.join(10)
            assert len(ran) == 1 and "timed out" in str(ran[0]), ran
            r = c.client()

            def busy_passed_through() -> bool:  # once the router has reconnected
                try:
                    r.get(key)
                except redis.ResponseError as exc:
                    return str(exc).startswith("BUSY")
                return False

            wait_for(busy_passed_through, "the shard's own -BUSY through the router")
            assert r.script_kill() is True

            def works() -> bool:  # Redis stops a killed script at its next hook call
                try:
                    return bool(r.set(key, "ok"))
                except redis.ResponseError as exc:
                    assert str(exc).startswith("BUSY"), exc
                    return False

            wait_for(works, "the shard to work again after SCRIPT KILL")
            assert r.get(key) == b"ok"
        finally:
            _kill_directly(c)
