"""What the router runs on and how it changes: `routes` (the route table: epoch rule, fencing),
`running` (the config in use), `clients` (the client registry), `parking`, `watch` (the
sentinels), `reload` (config reloads), `admin` (HTTP) and `metrics`."""
