"""The command table as data, and the pure functions that read it (spec, lookup, arity, keys).

Pure, no I/O: `router.commands.table` holds the rows, `router.commands.key_finders`
the key finders of movable-key commands, `router.commands.spec` builds and checks
the `CommandSpec` of every row and owns the lookups the router uses per request.
"""
