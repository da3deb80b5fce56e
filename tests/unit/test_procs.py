"""`slotwarden.procs.free_port`: ports the kernel cannot hand to an outgoing connection."""

from __future__ import annotations

import socket

from slotwarden.procs import _ephemeral_low, free_port


def test_free_ports_are_below_the_ephemeral_range_distinct_and_bindable():
    low = _ephemeral_low()
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
    assert all(1024 <= p and p + 10000 < low for p in ports), (low, min(ports), max(ports))
    for p in ports[:20]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", p))


def test_a_port_in_use_is_not_handed_out():
    # hold 800 ports of the ~12,000 it picks from (not ones it handed out, which it
    # would skip anyway): 300 picks would land on one of them if it did not check
    held = []
    try:
        for port in range(12000, 12800):
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                s.close()
                continue
            s.listen()
            held.append(s)
        taken = {s.getsockname()[1] for s in held}
        assert len(taken) > 700
        assert not taken & {free_port() for _ in range(300)}
    finally:
        for s in held:
            s.close()
