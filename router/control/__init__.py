"""What the router runs on and how it changes: the route table (epoch rule, fencing), parking,
the client registry, the sentinel watch, config reloads, the admin HTTP endpoint, the metrics."""
