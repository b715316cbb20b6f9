"""The human's answers through real `popkit-power approve` and `deny` processes: two answers written at once, where
only the first in the journal counts and the command whose answer came second must say so."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import runners
from support import race_barrier
from test_cli import outside_claude_code  # noqa: F401  - autouse: the CLI runs as a person at a terminal

from popkit_power.session import Session

SCRIPT = Path(sys.executable).parent / "popkit-power"
ASKER = "c0ffee00-1111:main"
#: Loaded into both racers (sitecustomize): each waits, just before it appends its answer, until the other one has
#: read the request as pending too, so both answers are written and the journal's order decides.
RACE_BARRIER = race_barrier("approval.", "ANSWER_BARRIER")


@pytest.fixture
def session(session: Session) -> Session:
    """conftest's session with the asking agent (main-c0ffee) joined."""
    created = session
    created.publish("agent.joined", {"name": "main-c0ffee"}, sender=ASKER)
    return created


def clean_env(power_dir: str, **extra: str) -> dict[str, str]:
    """A person's shell, with `power_dir` as its power directory."""
    return runners.person_env(POPKIT_POWER_HOME=power_dir, **extra)


@pytest.mark.slow
@pytest.mark.parametrize("meeting", ["after reading the request", "as they come"])
def test_concurrent_approve_and_deny_exactly_one_succeeds_and_the_other_names_the_answer(
        session: Session, tmp_path: Path, meeting: str) -> None:
    """Issue: concurrent approve and deny both said they succeeded (11 of 12 rounds), and only the first counted.
    Met "after reading the request", both see it pending and both answers are written; "as they come", the later
    one may see the first answer already. Either way: exactly one command exits 0, it is the answer the fold (and so
    the asking agent) holds, and the other exits 2 in one line naming that answer."""
    env = clean_env(session.power_dir)
    if meeting == "after reading the request":
        (tmp_path / "site").mkdir()
        (tmp_path / "site" / "sitecustomize.py").write_text(RACE_BARRIER)
        env["PYTHONPATH"] = str(tmp_path / "site")
    rounds = 12 if meeting == "after reading the request" else 6
    for round_number in range(rounds):
        request = f"r{round_number:02d}-race"
        session.publish("approval.requested", {"request": request, "question": "drop the table?"}, sender=ASKER)
        barrier = tmp_path / f"barrier-{round_number}"
        barrier.mkdir()
        racers = {verb: subprocess.Popen([str(SCRIPT), verb, request], env={**env, "ANSWER_BARRIER": str(barrier)},
                                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         text=True)
                  for verb in ("approve", "deny")}
        outcomes = {verb: (racer.wait(timeout=120), *racer.communicate()) for verb, racer in racers.items()}
        winners = [verb for verb, (code, _out, _err) in outcomes.items() if code == 0]
        assert len(winners) == 1, (round_number, outcomes)
        winner = winners[0]
        loser = "deny" if winner == "approve" else "approve"
        status = {"approve": "granted", "deny": "denied"}[winner]
        answer = session.projection()[0]["answered"][request]
        assert answer["status"] == status, (round_number, outcomes, answer)
        code, out, err = outcomes[loser]
        assert code == 2 and out == "" and err.count("\n") == 1, (round_number, outcomes)
        assert f"request {request} was already {status} by human" in err
        assert f"(seq {answer['answer_seq']})" in err
        answers = [record for record in session.journal.reader()
                   if record["type"].startswith("approval.") and record["data"].get("request") == request
                   and record["type"] != "approval.requested"]
        assert answers[0]["seq"] == answer["answer_seq"]
        if meeting == "after reading the request":
            assert len(answers) == 2, "both answers were written: the barrier made both read the request as pending"
            assert err.startswith(f"popkit-power: your answer (seq {answers[1]['seq']}) does not count: ")


@pytest.mark.slow
def test_an_answer_killed_at_a_random_moment_leaves_the_other_command_telling_the_truth(session: Session) -> None:
    """approve and deny started together, approve SIGKILLed at a random moment (before it read, before or after it
    wrote): deny exits 0 exactly when its answer is the one that counts, and 2 naming the answer otherwise."""
    import random
    import signal

    rng = random.Random(16_21)
    env = clean_env(session.power_dir)
    seen = set()
    for round_number in range(16):
        request = f"r{round_number:02d}-kill"
        session.publish("approval.requested", {"request": request, "question": "drop the table?"}, sender=ASKER)
        racers = {verb: subprocess.Popen([str(SCRIPT), verb, request], env=env, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                  for verb in ("approve", "deny")}
        time.sleep(rng.uniform(0, 0.4))  # the random moment of the kill (what it hits is checked, not assumed)
        racers["approve"].send_signal(signal.SIGKILL)
        racers["approve"].wait(timeout=120)
        code, out, err = racers["deny"].wait(timeout=120), *racers["deny"].communicate()
        answer = session.projection()[0]["answered"].get(request)
        assert answer is not None, (round_number, code, out, err)  # deny always writes, if approve did not first
        if code == 0:
            assert answer["status"] == "denied" and out.startswith(f"denied {request} (seq {answer['answer_seq']})")
        else:
            assert code == 2 and answer["status"] == "granted", (round_number, code, out, err)
            assert f"request {request} was already granted by human" in err
        seen.add(answer["status"])
    assert "denied" in seen, "no round let deny answer first: the kills never came early"
