"""``slotwarden failover``: ask the sentinels for a planned switchover of one shard.

Owns the operator side of ``POST /failover``: try each sentinel of the
config in turn until one answers (a sentinel that is down or busy is
skipped), print the outcome in one sentence, exit 0 only if the shard
switched. The sentinel that takes the request wins an epoch, pauses writes
on the master until the chosen replica has all of them, then promotes it
(`sentinel.decide.failover.start_planned`), so no acknowledged write is lost.
With ``--force --to ADDR`` it is not a switchover: the master is down and the
sentinels refused to promote any replica (``failover-refused``); the operator
takes the risk and ADDR is promoted anyway (`sentinel.decide.failover.start_forced`).
"""

from __future__ import annotations

import asyncio
import sys

from sentinel.act.peers import PeerClient
from sentinel.errors import SetupError
from sentinel.main import require_secret
from slotwarden.cluster.config import ClusterConfig
from slotwarden.cluster.topology import Address


async def request(
    config: ClusterConfig, secret: str, shard: str, to: str | None, force: bool = False
) -> int:
    assert config.sentinel is not None
    timeout = config.sentinel.failover_timeout_ms / 1000 + 5
    body: dict[str, object] = {"shard": shard, "to": to}
    if force:
        body["force"] = True
    async with PeerClient(secret, config.tls) as client:
        for peer in config.sentinel.peers:
            answer = await client.call_any("POST", peer.listen, "/failover", timeout, body)
            if answer is None:
                print(f"sentinel {peer.id} ({peer.listen}) did not answer", file=sys.stderr)
                continue
            if answer.get("ok"):
                for sw in answer.get("switched", []):
                    pause = sw.get("pause_ms")
                    print(
                        f"shard {sw['shard']}: switched from {sw['from']} to {sw['to']} at "
                        f"epoch {answer.get('epoch')} by sentinel {peer.id}"
                        + (f"; writes paused {pause} ms" if pause is not None else "")
                    )
                return 0
            reason = answer.get("reason") or answer.get("error") or "no reason given"
            print(f"sentinel {peer.id}: switchover of shard {shard} failed: {reason}")
            if "busy" not in str(reason):
                return 1
    print(f"no sentinel could switch shard {shard} over", file=sys.stderr)
    return 1


def main(config: ClusterConfig, shard: str, to: str | None, force: bool = False) -> int:
    if config.sentinel is None:
        print("the config has no sentinel section: nothing can fail over", file=sys.stderr)
        return 1
    if shard not in {s.name for s in config.shards}:
        names = ", ".join(s.name for s in config.shards)
        print(f"unknown shard {shard!r}; the shards are: {names}", file=sys.stderr)
        return 1
    if force and to is None:
        print("--force needs --to HOST:PORT: the replica to promote", file=sys.stderr)
        return 1
    if to is not None:
        Address.parse(to)
    try:
        secret = require_secret(config)
    except SetupError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    return asyncio.run(request(config, secret, shard, to, force))
