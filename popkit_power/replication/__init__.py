"""Replication: mirror each machine's journal to Redis Streams and pull the others' events back.

The contract every transport keeps is in `transport.py`; the transports are `upstash_rest.py` (Upstash's REST API,
httpx), `redis_streams.py` (a Redis server, redis-py, the `redis` extra) and `memory.py` (fakeredis, for tests, with
a fault-injecting wrapper). This `__init__` imports nothing, so that importing a submodule costs only that module.
"""
