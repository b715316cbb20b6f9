"""The projector's fold, one concept a module:

    model.py      the state's shape, its statuses and the rules the fold depends on, and the empty state
    agents.py     who is there and what they do (joins, tool calls, heartbeats, idleness, leaving, being lost, file
                  conflicts)
    tasks.py      the task lifecycle, and who may finish or give back a task
    ownership.py  who holds a task once the replication server orders the task transitions (the arbiter's places)
    exchange.py   insights, broadcasts, approvals, the objective, the session and the coordinator

`popkit_power.projector` puts them together into `apply` and re-exports the state's names; the few rules used
outside the fold come from their module (`tasks.may_finish` for `done` and `Session.complete_task`). This
`__init__` imports nothing.

The state's and the events' types (TypedDicts, for the type checker only) are in `popkit_power/shapes/`.
"""
