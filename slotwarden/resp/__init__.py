"""The RESP codec, sans-IO, and the only home of C (`slotwarden.resp.accel`).

Nothing here does I/O: callers feed bytes and pull complete items.

- `requests`: `RequestReader` parses what clients send (multibulk and inline).
- `replies`: `ReplyScanner` frames what servers answer; `split_array`.
- `encode`: the encoders and the constant replies.
- `buffer`: the input buffer both readers use, and the `NEED_MORE` marker.
- `keys`: `group_keys_py`, splitting a multi-key request by shard (the reference).
- `accel`: picks C (`_speedups.c`) or the Python reference, once.
- `errors`: `ProtocolError`, the root of this package's exceptions.

Imports: `slotwarden.cluster` only. The package itself
imports nothing: callers import the module they use.
"""
