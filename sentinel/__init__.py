"""slotwarden's control plane: quorum failure detection, election and failover (issue 3).

Pure decisions: `model` (snapshot types, actions), `detector` (SDOWN/ODOWN),
`election` (epochs, votes, role table), `failover` (replica choice, step
machine, reconcile), `reconfigure` (a cluster.yaml edit merged with the
failover state). Persistence: `state`. I/O: `probe`, `actuator`, `peers`
(HTTP clients), `api` (HTTP server), `loop` (the run cycle), `leader`
(elections, and the failovers and edits it publishes), `reload` (live
edits of cluster.yaml), `metrics` (``GET /metrics``). Processes and
commands: `main` (``slotwarden sentinel``), `status`, `manual`
(``slotwarden failover``).
"""
