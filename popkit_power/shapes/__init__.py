"""The shapes of the data every part reads, as `TypedDict`s for the type checker: no part's code, only types.

    state.py   the projected state and each kind of entry in it (agents, tasks, approvals, insights, ...)
    events.py  the event envelope and the data of every event type (protocol.EVENT_TYPES), and the human's evidence

Imported only under `TYPE_CHECKING` (building the TypedDicts costs milliseconds, and the hook imports the modules that
name them): at run time the state and the events are the plain dicts a journal line or a snapshot holds. They sit
beside the fold rather than in it because the readers of the state (display, status, the journal's snapshots, the
hook) need them too, and a reader of the state must not depend on the code that folds it. They import nothing of
the package.
"""
