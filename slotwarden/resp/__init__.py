"""The RESP codec, sans-IO, and the only home of C (`slotwarden.resp.accel`).

Nothing here does I/O: callers feed bytes and pull complete items.

- `requests`: `RequestReader` parses what clients send (multibulk and inline).
- `replies`: `ReplyScanner` frames what servers answer; `split_array`.
- `encode`: the encoders and the constant replies.
- `buffer`: the input buffer both readers use, and the `NEED_MORE` marker.
- `accel`: picks C (`_speedups.c`) or the Python reference, once.
- `errors`: `ProtocolError`, the root of this package's exceptions.

Imports: `slotwarden.cluster` only (besides hiredis).
"""

from slotwarden.resp.buffer import NEED_MORE
from slotwarden.resp.encode import (
    NIL,
    NULL3,
    OK,
    PONG,
    encode_array,
    encode_bulk,
    encode_command,
    encode_int,
    encode_simple,
    error_reply,
)
from slotwarden.resp.errors import ProtocolError
from slotwarden.resp.replies import ReplyScanner, split_array, split_array_py
from slotwarden.resp.requests import (
    DEFAULT_MAX_ARGS,
    DEFAULT_MAX_BULK,
    DEFAULT_MAX_INLINE,
    Request,
    RequestReader,
    split_inline,
)

__all__ = [
    "DEFAULT_MAX_ARGS",
    "DEFAULT_MAX_BULK",
    "DEFAULT_MAX_INLINE",
    "NEED_MORE",
    "NIL",
    "NULL3",
    "OK",
    "PONG",
    "ProtocolError",
    "ReplyScanner",
    "Request",
    "RequestReader",
    "encode_array",
    "encode_bulk",
    "encode_command",
    "encode_int",
    "encode_simple",
    "error_reply",
    "split_array",
    "split_array_py",
    "split_inline",
]
