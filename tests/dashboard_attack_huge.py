"""Fill a session with many agent.tool events quickly (a helper of test_dashboard_attacks.py, also run by hand)."""

from __future__ import annotations

import sys
import time

from popkit_power.session import Session


def fill(session: Session, count: int) -> None:
    keys = [f"h{n:02d}:main" for n in range(20)]
    for n, key in enumerate(keys):
        session.publish("agent.joined", {"name": f"worker-{n}", "cwd": "/srv/project"}, sender=key)
    batch = []
    for n in range(count):
        batch.append(session.event("agent.tool", {"tool": "Edit", "ok": True, "file": f"/srv/m{n % 50}.py"},
                                   sender=keys[n % 20]))
        if len(batch) == 5000:
            session.append_events(batch)
            batch = []
    if batch:
        session.append_events(batch)


if __name__ == "__main__":
    from popkit_power.session import start_session

    began = time.monotonic()
    made = start_session(sys.argv[1], "huge", sender="human")
    fill(made, int(sys.argv[2]))
    print("filled in", round(time.monotonic() - began, 1), "s", made.journal.end_position().seq)
