"""The router's decisions, pure (no asyncio, no sockets): plan, merge, modes, transactions,
the commands the router answers itself, and the client's session."""
