"""The router's connections (asyncio), one class per kind: client, client state, subscriber,
backend, pinned, node; `router.wire.ports` holds the Protocols they call back up through."""
