"""The router's connections (asyncio), one class per kind: `client`, `client_state`,
`subscriber`, `backend`, `pinned`, `node`; `turn` (one event-loop turn's output, flushed once);
`ports` holds the Protocols they call back up through."""
