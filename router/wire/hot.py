"""The one place that picks the router's C hot path (`router.wire._hot`) or none.

``_hot.c``, built by setup.py next to `slotwarden.resp._speedups` when a C
compiler is there, runs a single-key request from the client's bytes to its
backend's queue and its reply back to the client's socket without a Python
frame per request: ``ClientBase`` and ``BackendBase`` (the bases of
`router.wire.client.ClientConn` and `router.wire.backend.BackendConn`: their
hot attributes as C fields, and ``data_received``/``flush`` in C) and
``Pending`` (the reply slot). The Python methods (``_data_received``,
``_flush``, ``PyPending``) are the reference: each C method takes what it
can and hands the rest, from exactly that byte, to its Python twin; the
tests run the router both ways (`tests/integration/router/
test_speedups_router.py`, `tests/unit/router/test_hot_path.py`).

Exports, each chosen once, here: ``H``, the extension module, or None when it
is not built or the environment sets ``SLOTWARDEN_PURE_PYTHON=1`` (the same
switch that turns `slotwarden.resp.accel` off); `ByteCounters` and
`Histogram` (the router's byte counters and latency histograms: C's, or
`PyByteCounters` and `PyHistogram`); `fast_table`, what ``H.setup`` is given;
`implementation`, for INFO. No I/O here.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from types import ModuleType

from slotwarden.resp import accel

H: ModuleType | None
try:
    from router.wire import _hot as H
except ImportError:  # no compiler at install time: the Python path runs
    H = None

if accel.C is None:  # SLOTWARDEN_PURE_PYTHON=1, or no speedups at all: all Python
    H = None


class PyByteCounters:
    """The bytes read from and written to clients (`RouterStats.io`): C's ``ByteCounters``
    when the hot path runs, which adds to them without a lookup or an int object."""

    __slots__ = ("bytes_in", "bytes_out")

    def __init__(self) -> None:
        self.bytes_in = 0
        self.bytes_out = 0


ByteCounters: type = H.ByteCounters if H is not None else PyByteCounters


class PyHistogram:
    """A fixed-bucket histogram kept as plain numbers (`RouterStats.latency`): ``counts``
    per bucket of ``bounds`` (``bisect_left``: a value equal to a bound is in its
    bucket; the last count is above every bound) and their ``sum``. C's ``Histogram``
    when the hot path runs, which observes without a Python frame."""

    __slots__ = ("_bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self._bounds = tuple(bounds)
        self.counts = [0] * (len(self._bounds) + 1)
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(self._bounds, seconds)] += 1
        self.sum += seconds


Histogram: type = H.Histogram if H is not None else PyHistogram


def fast_table() -> dict[bytes, tuple[int, int, int, str, int, str, str]]:
    """The commands of `router.commands.spec.FAST` as C reads them: name as clients send
    it -> (min_args, max_args, fast_key, name, split_step, merger, shape); a single-key
    command has a ``fast_key``, a fan-out (MGET/MSET/DEL-like) a ``split_step``."""
    from router.commands.spec import FAST

    return {
        name: (
            spec.min_args,
            spec.max_args,
            spec.fast_key or 0,
            spec.name,
            spec.split_step or 0,
            spec.merger or "",
            spec.shape.value,
        )
        for name, spec in FAST.items()
    }


def implementation() -> str:
    """``"c"`` when the C speedups and hot path run, ``"python"`` otherwise (INFO router
    ``speedups``, the start-up log)."""
    return "c" if H is not None else "python"
