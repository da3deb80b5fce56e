"""Which implementation does the router's per-request byte work: C or Python.

`router._speedups` (router/_speedups.c, built by setup.py when a C compiler
is there) frames requests and replies, splits and merges fan-outs and hashes
keys in C. The pure-Python code in `router.resp`, `router.planner`,
`router.merge` and `router.slots` is the reference: the C functions return
what it returns, or say "unsure" and the caller falls back to it for that
input (tests compare the two on every byte split and on random streams).

``C`` is the extension module, or None when it is not built or when the
environment sets ``SLOTWARDEN_PURE_PYTHON=1`` (to rule it out when chasing a
problem). No I/O here.
"""

from __future__ import annotations

import os
from types import ModuleType

C: ModuleType | None
try:
    from router import _speedups as C
except ImportError:  # no compiler at install time: the Python reference runs
    C = None

if os.environ.get("SLOTWARDEN_PURE_PYTHON", "") not in ("", "0"):
    C = None


def implementation() -> str:
    """``"c"`` or ``"python"``, for INFO and the start-up log."""
    return "c" if C is not None else "python"
