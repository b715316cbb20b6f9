"""Replication: mirror each machine's journal to Redis Streams and pull the others' events back.

The local journal stays the truth; the server carries copies. The replicator, by topic:

    mode_selector.py  which server carries the session (Upstash, a Redis server, or the journal alone), and why
    running.py        starting and stopping a session's replicator (with the coordinator, or `popkit-power
                      replicate`), and pushing a session to its end once (`stop`, `replicate --once`)
    replicator.py     `Replicator`: this machine's events out, the other machines' in, failures backed off
    outbox.py         what the push sends next: this origin's unpushed events, a batch at a time
    scripts.py        the Lua that makes a push exactly-once (one EVALSHA per batch)
    effects.py        what a pushed event writes besides its origin stream: the original Power Mode's Redis layout,
                      and its part in the arbiter's decisions (the first claim the server sees wins; task changes
                      numbered in one order for every machine)
    pulling.py        the pull side: the other machines' and the arbiter's streams, appended to the journal
    entries.py        what the server's entries and replies mean, trusted no further than they can be checked
    skipped.py        the entries a puller skipped because their machine did not write them, counted per origin
    positions.py      where a replicator goes on from, worked out from the journal and the server, never a side file
    polling.py        Upstash's poll schedule (no blocking reads there, and every command is billed)
    status_file.py    `replication.json`: what the replicator last said about itself, which `status` reads
    errors.py         `ReplicationError` and its family (a transport's failures), each with its code

The contract every transport keeps is in `transport.py`; the transports are `upstash_rest.py` (Upstash's REST API,
httpx), `redis_streams.py` (a Redis server, redis-py, the `redis` extra) and `memory.py` (fakeredis, for tests, with
a fault-injecting wrapper). This `__init__` imports nothing, so that importing a submodule costs only that module.
"""
