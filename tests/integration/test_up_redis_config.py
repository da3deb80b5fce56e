"""`slotwarden up` with cluster.yaml's ``redis:`` blocks (issue 13, shard config).

Every redis-server starts with the merged settings (the top block, a shard's block over
it), and the sentinels, as their own ACL user, set back a value an operator changed by
hand on a replica.
"""

from __future__ import annotations

import signal
import time

import pytest
from test_up import UpRun

MiB = 1024 * 1024
EXAMPLE = "# redis:\n#   maxmemory: 100mb\n#   maxmemory-policy: allkeys-lru\n"
SHARD_B = "  - name: b\n    slots: 5461-10922\n"


@pytest.mark.timeout(120)
def test_up_starts_every_node_with_the_blocks_and_sentinels_keep_them(tmp_path):
    run = UpRun(
        tmp_path,
        replace={
            EXAMPLE: "redis:\n  maxmemory: 100mb\n  maxmemory-policy: allkeys-lru\n",
            SHARD_B: SHARD_B + "    redis:\n      maxmemory: 1gb\n      hz: 20\n",
        },
    )
    try:
        run.wait_router()
        config = run.config
        for shard in config.shards:
            want = {"maxmemory": str(100 * MiB), "maxmemory-policy": "allkeys-lru", "hz": "10"}
            if shard.name == "b":
                want.update(maxmemory=str(1024 * MiB), hz="20")
            for addr in (shard.master, *shard.replicas):
                admin = run.admin(addr)
                have = {k: admin.config_get(k)[k] for k in want}
                assert have == want, (addr, run.output)
        sentinel_logs = [run.run_dir / f"sentinel-{p.id}" / "sentinel.log"
                         for p in config.sentinel.peers]  # fmt: skip
        replica = config.shards[0].replicas[0]
        run.admin(replica).config_set("maxmemory", "0")
        deadline = time.monotonic() + 30
        while run.admin(replica).config_get("maxmemory")["maxmemory"] != str(100 * MiB):
            assert time.monotonic() < deadline, "the sentinels did not set maxmemory back"
            time.sleep(0.2)
        line = f"[redis-config] set maxmemory={100 * MiB} on {replica} (shard a; was 0)"
        while line not in (logs := "".join(p.read_text() for p in sentinel_logs)):
            assert time.monotonic() < deadline, logs  # logged once its read-back came
            time.sleep(0.2)
        # one event per change per sentinel, and nothing else needed setting
        assert all(p.read_text().count("[redis-config] set") <= 1 for p in sentinel_logs), logs
        assert {m for m in logs.splitlines() if "[redis-config" in m} <= {
            m for m in logs.splitlines() if line in m
        }, logs
        assert run.stop(signal.SIGTERM) == 0, run.output
    finally:
        run.kill()
