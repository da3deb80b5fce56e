"""The one exception of the RESP codec.

Invariant: reply errors (``-ERR ...`` from a server, or built by
`slotwarden.resp.encode.error_reply`) are *values*, forwarded as bytes;
malformed input is a `ProtocolError` and closes that one connection.
"""

from __future__ import annotations

from slotwarden.cluster.errors import SlotwardenError


class ProtocolError(SlotwardenError):
    """Malformed RESP from a peer; the connection it came from must be closed.

    The root of every exception raised by `slotwarden.resp`. ``str(exc)`` is
    the text after ``Protocol error: `` in Redis's own reply, e.g.
    ``invalid multibulk length``.
    """
