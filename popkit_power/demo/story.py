"""The demo's story, as data made from a seed: the same seed gives the same agents, tasks, files and words.

Three agents work on one objective. `ana` takes the login form and is killed mid-task; the coordinator orphans her
task and `ben`, who has finished his own, takes it over when his news offers it. `ben` shares an insight that `cleo`
hears. `cleo` asks the human before a risky step and goes on once the answer reaches her. Each agent's script is a
list of steps (agent.py runs them):

    ("start",)                        SessionStart
    ("tool", NAME, INPUT)             a tool call of its own (Read, Edit, Grep ...): PostToolUse
    ("power", ARGS...)                a Bash call that runs `popkit-power ARGS`, then its PostToolUse
    ("until", KIND, TOOL, INPUT)      repeat that tool call until its news has KIND ("orphaned" or "approval")
    ("claim_offered",)                claim the task the orphaned-task news offered
    ("linger", TOOL, INPUT)           keep working with that call until killed (the agent that dies mid-task)
    ("stop",)                         Stop and SessionEnd: the agent finishes
"""

from __future__ import annotations

import random
import uuid
from typing import Any

DEFAULT_SEED = 7
OBJECTIVE = "Ship the login page"

#: (persona, task id, task title, the files it works on)
_WORK = (
    ("ana", "t-form", "Build the login form", ("src/login/LoginForm.tsx", "src/login/LoginForm.css")),
    ("ben", "t-api", "Add the session API", ("src/api/session.py", "src/api/cookies.py")),
    ("cleo", "t-tests", "Test the login flow", ("tests/test_login.py", "tests/conftest.py")),
)
INSIGHTS = (
    "The session cookie must be SameSite=Lax, or the login redirect drops it",
    "Passwords are compared with hmac.compare_digest, never ==",
    "The login endpoint is rate-limited per IP at 10 a minute",
)
QUESTIONS = (
    "Run the database migration 0042_add_sessions on the shared staging database?",
    "Delete the old login tests in tests/legacy/ before adding the new ones?",
)


def claude_session_id(rng: random.Random) -> str:
    """A Claude Code session id (a UUID, as Claude Code makes them) drawn from the seeded generator."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def tasks() -> list[dict[str, str]]:
    """The tasks the human adds before the agents start."""
    return [{"task": task, "title": title} for _persona, task, title, _files in _WORK]


def story(seed: int = DEFAULT_SEED) -> dict[str, Any]:
    """The whole story for `seed`: the objective, the tasks, and for each persona its Claude Code session id and
    its script; also what the human says (`note`) when granting the approval."""
    rng = random.Random(seed)
    sessions = {persona: claude_session_id(rng) for persona, *_rest in _WORK}
    insight = rng.choice(INSIGHTS)
    question = rng.choice(QUESTIONS)
    (_a, form, _t1, form_files), (_b, api, _t2, api_files), (_c, tests, _t3, test_files) = _WORK
    scripts: dict[str, list[tuple[Any, ...]]] = {
        "ana": [
            ("start",),
            ("power", "claim", form),
            ("tool", "Read", {"file_path": form_files[0]}),
            ("tool", "Edit", {"file_path": form_files[0], "old_string": "<form>", "new_string": "<form method=post>"}),
            ("tool", "Write", {"file_path": form_files[1], "content": ".login { display: grid; }\n"}),
            ("linger", "Read", {"file_path": form_files[0]}),
        ],
        "ben": [
            ("start",),
            ("power", "claim", api),
            ("tool", "Read", {"file_path": api_files[0]}),
            ("tool", "Edit", {"file_path": api_files[0], "old_string": "def login", "new_string": "def login_user"}),
            ("power", "insight", insight, "--tags", "login,cookie,api"),
            ("tool", "Write", {"file_path": api_files[1], "content": "SAMESITE = 'Lax'\n"}),
            ("power", "done", api, "--result", "POST /api/session sets the session cookie (SameSite=Lax)"),
            ("until", "orphaned", "Grep", {"pattern": "TODO", "path": "src"}),
            ("claim_offered",),
            ("tool", "Read", {"file_path": form_files[0]}),
            ("tool", "Edit", {"file_path": form_files[0], "old_string": "<button>", "new_string": "<button "
                              "type=submit>"}),
            ("power", "done", form, "--result", "The form posts to /api/session and shows its errors"),
            ("stop",),
        ],
        "cleo": [
            ("start",),
            ("power", "claim", tests),
            ("tool", "Read", {"file_path": test_files[1]}),
            ("tool", "Write", {"file_path": test_files[0], "content": "def test_login(client): ...\n"}),
            ("power", "ask", question),
            ("until", "approval", "Read", {"file_path": test_files[0]}),
            ("tool", "Bash", {"command": "alembic upgrade 0042_add_sessions", "description": "run the migration"}),
            ("tool", "Bash", {"command": "pytest -q tests/test_login.py", "description": "run the login tests"}),
            # ben's insight is what the tests check against: she does not finish before it reached her (on a busy
            # machine ben can be slower than her whole script)
            ("until", "insight", "Read", {"file_path": test_files[0]}),
            ("power", "done", tests, "--result", "tests/test_login.py passes against the migrated database"),
            ("stop",),
        ],
    }
    return {"seed": seed, "objective": OBJECTIVE, "tasks": tasks(), "insight": insight, "question": question,
            "note": "go ahead; staging was backed up this morning",
            "agents": {persona: {"claude_session": sessions[persona], "script": scripts[persona],
                                 "task": task} for persona, task, _title, _files in _WORK},
            "victim": "ana", "rescuer": "ben", "asker": "cleo"}
