"""The one place that picks the router's C hot path (`router.wire._hot`) or none.

``_hot.c``, built by setup.py next to `slotwarden.resp._speedups` when a C
compiler is there, runs the single-key request path and the reply path
without a Python frame per request: `serve` (the fast path of
`router.wire.client.ClientConn.process` over a read's bytes), `deliver` (the
loop of `router.wire.backend.BackendConn.data_received`), `take_ready` (the
loop of `ClientConn.flush`) and `Pending` (the reply slot). The Python code
is the reference: each C function takes a prefix of its input and leaves the
rest, from exactly that byte, to the Python path; `tests/unit/router/
test_hot_path.py` checks them against it.

Exports, each chosen once, here: ``H``, the extension module, or None when it
is not built or the environment sets ``SLOTWARDEN_PURE_PYTHON=1`` (the same
switch that turns `slotwarden.resp.accel` off). `setup` hands it the command
table's fast entries once the router's classes exist. No I/O here.
"""

from __future__ import annotations

from types import ModuleType

from slotwarden.resp import accel

H: ModuleType | None
try:
    from router.wire import _hot as H
except ImportError:  # no compiler at install time: the Python path runs
    H = None

if accel.C is None:  # SLOTWARDEN_PURE_PYTHON=1, or no speedups at all: all Python
    H = None


def fast_table() -> dict[bytes, tuple[int, int, int, str]]:
    """The single-key commands of `router.commands.spec.FAST` as C reads them:
    name as clients send it -> (min_args, max_args, fast_key, name)."""
    from router.commands.spec import FAST

    return {
        name: (spec.min_args, spec.max_args, spec.fast_key, spec.name)
        for name, spec in FAST.items()
        if spec.fast_key
    }
