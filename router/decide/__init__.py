"""The router's decisions, pure (no asyncio, no sockets): `plan`, `merge`, `fanin` (the one
"wait for N replies, then merge"), `modes`, `txn`, `builtins` (the commands the router answers
itself), `session` and `users`."""
