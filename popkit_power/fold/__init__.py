"""The projector's fold, one concept a module: `model` (the state's shape, statuses and rules), `agents` (who is
there and what they do), `tasks` (the task lifecycle), `exchange` (insights, approvals, the objective, the session and
the coordinator). `popkit_power.projector` puts them together into `apply`. `shapes` and `event_shapes` are types
only (the state's entries and the events as TypedDicts, for mypy), never imported at run time."""
