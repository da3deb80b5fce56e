"""The model the router and the sentinels share, pure (no asyncio, no sockets).

- `errors`: `SlotwardenError` (the project's root) and `ClusterError` (this package's).
- `slots`: CRC16 hash slots and slot-range text.
- `topology`: `Address`, `Shard`, `SlotMap` (immutable, epoch-numbered).
- `config`: cluster.yaml, loaded and validated.
- `secrets`: the one secret reader, the shared peer secret, backend credentials.
- `tls`: the ``tls:`` section, the cleartext refusal, the SSL contexts.
- `filewatch`: notices cluster.yaml edits (the caller's loop polls it).
- `ownkeys`: names of the project's own keys both sides use (a migration's request set).

Imports nothing from `router` or `sentinel`; both import it.
"""
