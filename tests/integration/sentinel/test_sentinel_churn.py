"""A shard-wide outage does not churn epochs (issue 11 item 6), over real processes.

The master and every replica of the shard are killed: no failover can fix it.
Each sentinel used to stand for a new epoch every second or so, each ending in
``no replica can be promoted`` (9 epochs in 12 s). Now the sentinels refuse it
once - one ``failover-refused`` event each, no epoch spent - and the epochs
stay where they were.
"""

from __future__ import annotations

import signal
import time

from test_sentinel_harness import sentinel_cluster

OUTAGE_S = 6.0


def test_master_and_all_replicas_down_spend_few_epochs():
    with sentinel_cluster(replicas=2) as sc:
        sc.start_all()
        sc.wait_in_sync()
        for node in [*sc.replicas[0], sc.masters[0]]:
            node.kill(signal.SIGKILL)
        sc.wait_for(
            lambda: all(sc.status(s)["odown"] == ["a"] for s in sc.ids), 10, "shard a ODOWN"
        )
        time.sleep(OUTAGE_S)
        epochs = {sid: sc.status(sid)["epoch"] for sid in sc.ids}
        assert max(epochs.values()) <= 1, (epochs, sc.logs_text())
        logs = sc.logs_text()
        assert logs.count("[new-epoch]") <= 1, logs
        for sid in sc.ids:
            assert sc.log(sid).count("[failover-refused]") == 1, sc.log(sid)
            assert sc.topology(sid)["epoch"] == 0
