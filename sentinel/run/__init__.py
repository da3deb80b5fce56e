"""One running sentinel: the run cycle and the state it owns (filled in below)."""
