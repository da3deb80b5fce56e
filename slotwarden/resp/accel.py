"""The one place that picks C or Python for the per-request byte work.

`slotwarden.resp._speedups` (``_speedups.c``, built by setup.py when a C
compiler is there) frames requests and replies, splits and merges fan-outs
and hashes keys. The pure-Python code is the reference: each C function
returns what the reference returns, or the one marker `UNSURE`, and the
caller hands that input to the reference.

Exports, each chosen once, here (redis-py's ``DefaultParser`` idea):

- ``C``: the extension module, or None when it is not built or when the
  environment sets ``SLOTWARDEN_PURE_PYTHON=1`` (to rule it out when chasing
  a problem);
- the fast framers ``parse_requests`` (and ``parse_bulks``, which resumes a
  request it left partial), ``scan_replies``, ``split_array`` and
  ``merge_ordered``: the C function, or None when only the reference runs;
- the complete functions ``key_slot`` and ``group_keys``: C when built, else
  the reference (`slotwarden.cluster.slots.key_hash_slot`,
  `slotwarden.resp.keys.group_keys_py`); they never answer UNSURE.

No I/O here.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from types import ModuleType
from typing import Any, Final

from slotwarden.cluster.slots import key_hash_slot
from slotwarden.resp.keys import Grouped, group_keys_py

C: ModuleType | None
try:
    from slotwarden.resp import _speedups as C
except ImportError:  # no compiler at install time: the Python reference runs
    C = None

if os.environ.get("SLOTWARDEN_PURE_PYTHON", "") not in ("", "0"):
    C = None


class _Unsure:
    """Stands in for ``_speedups.UNSURE`` when C is not built (nothing returns it then)."""

    def __repr__(self) -> str:
        return "UNSURE"


# "Not one this fast path frames: ask the reference." Compare with ``is``.
UNSURE: Final[object] = C.UNSURE if C is not None else _Unsure()

parse_requests: Callable[..., tuple[list[Any], int, Any, Any]] | None = (
    C.parse_requests if C is not None else None
)
parse_bulks: Callable[..., tuple[int, Any]] | None = C.parse_bulks if C is not None else None
scan_replies: Callable[[bytes, int, list[bytes]], tuple[int, Any]] | None = (
    C.scan_replies if C is not None else None
)
split_array: Callable[[bytes], Any] | None = C.split_array if C is not None else None
merge_ordered: Callable[[list[bytes], list[list[int]], int, bytes], Any] | None = (
    C.merge_ordered if C is not None else None
)
key_slot: Callable[[bytes], int] = C.key_slot if C is not None else key_hash_slot
group_keys: Callable[[list[bytes], int, bytes], Grouped] = (
    C.group_keys if C is not None else group_keys_py
)


def implementation() -> str:
    """``"c"`` or ``"python"``, for INFO and the start-up log."""
    return "c" if C is not None else "python"
