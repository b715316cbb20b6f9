"""The coordinator's answer to hooks sent over HTTP (`hook_transport: "http"`): the same handlers as the hook
process, run in the coordinator for a request instead of in a process per call (app.py), with the caller's
process found from its loopback socket (peer.py), served on 127.0.0.1:hook_port while the coordinator runs
(server.py)."""
