"""How long the dashboard takes to answer one keep-alive request (a helper of test_dashboard_attacks.py; run by hand
with `fixed` as its first argument it binds the socket as getaddrinfo would, with proto IPPROTO_TCP, to compare)."""

from __future__ import annotations

import socket
import time


def keep_alive_ms(port: int, token: str, path: str = "/static/dashboard.css", rounds: int = 20) -> float:
    """The mean time of `rounds` requests on one connection, each read whole before the next is sent (and each
    answered 200: AssertionError otherwise)."""
    request = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
               f"Cookie: popkit_power_dashboard_{port}={token}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        began = time.monotonic()
        for _ in range(rounds):
            conn.sendall(request)
            data = b""
            while True:
                data += conn.recv(65536)
                if b"\r\n\r\n" in data:
                    head, body = data.split(b"\r\n\r\n", 1)
                    assert head.startswith(b"HTTP/1.1 200 "), head[:80]
                    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length"))
                    if len(body) >= length:
                        break
        return (time.monotonic() - began) / rounds * 1000


if __name__ == "__main__":
    import os
    import shutil
    import sys

    from dashboard_support import serving

    from popkit_power.dashboard import server
    from popkit_power.session import start_session

    if sys.argv[1:] == ["fixed"]:
        real = socket.socket

        class TCP(real):  # type: ignore[misc,valid-type]
            def __init__(self, family: int = -1, type: int = -1, proto: int = -1, fileno: int | None = None) -> None:
                super().__init__(family, type, socket.IPPROTO_TCP if fileno is None else proto, fileno)

        server.socket.socket = TCP  # type: ignore[misc]
    home = "/tmp/dashboard_attack_latency"
    shutil.rmtree(home, ignore_errors=True)
    os.environ["POPKIT_POWER_HOME"] = home
    with serving(start_session(home, "x", sender="human")) as served:
        print(sys.argv[1:], round(keep_alive_ms(served.port, served.token), 1), "ms per keep-alive request")
