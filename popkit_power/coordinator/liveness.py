"""Which agents' Claude Code processes still run on this machine, as the coordinator sees them each round.

It holds a pidfd on each running process (where the OS has them), so the coordinator's wait ends the moment one
exits, and each round one poll of the pidfds says which have exited, without reading /proc. A readable pidfd is the
verdict itself: once the process is reaped its pid may be given to another process even while the pidfd is open, so
the pid is not looked up again (a process recorded without its start time would pass for the one that exited).

A pidfd is a file descriptor, and a thousand agents reach the usual soft limit of 1,024: so the soft limit is raised
towards the hard one when more are needed, at most half of it goes to pidfds (the journal, the replicator's sockets
and the /proc reads need the rest), and the agents beyond are looked at in /proc every round instead (within
`POLL_SECONDS` of their death rather than at once). An error of this process's own (no descriptor left) is never
taken for an agent's death: that agent gets no verdict this round and is looked at again the next
(processes.still_running).
"""

from __future__ import annotations

import errno
import logging
import os
import select

from ..keys import host_name
from ..processes import can_check, still_running
from ..projector import State, live_agents

log = logging.getLogger(__name__)

#: Never more file descriptors than this, whatever the hard limit (a limit of "unlimited" is not a target)
MOST_DESCRIPTORS = 1 << 20
_OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE)
#: pidfds given back when the process runs out of descriptors anyway, for the journal and the /proc reads
HEADROOM = 32


def raise_descriptor_limit() -> int:
    """Raise this process's soft limit of open files to its hard limit (at most MOST_DESCRIPTORS) where the OS
    allows; return the soft limit now in force."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = MOST_DESCRIPTORS if hard == resource.RLIM_INFINITY else min(hard, MOST_DESCRIPTORS)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (OSError, ValueError) as error:
            log.info("the limit of open files stays at %d: %s", soft, error)
    return int(soft) if soft != resource.RLIM_INFINITY else MOST_DESCRIPTORS


class ProcessWatch:
    """The pidfds of the agents' processes on this machine, and the check of each round."""

    def __init__(self) -> None:
        self._pidfds: dict[str, tuple[int, int]] = {}  # agent key -> (pid, pidfd)
        self._budget: int | None = None  # how many pidfds may be held; worked out when first needed
        self._raised = False
        self.polled = 0  # agents of the last round looked at in /proc only (no pidfd for them)

    def fds(self) -> list[int]:
        """The pidfds to wait on: one becomes readable when its process exits."""
        return [fd for _pid, fd in self._pidfds.values()]

    def close(self) -> None:
        for _pid, fd in self._pidfds.values():
            os.close(fd)
        self._pidfds.clear()

    def check(self, state: State) -> dict[str, bool | None]:
        """For each live agent whose Claude Code process is on this machine: does it still run? False only on
        evidence that it is gone; an agent this process could not look at (an error of its own) gets True, no
        verdict this round. Agents elsewhere, or without a pid, are left out: they are judged by silence."""
        here = host_name()
        running: dict[str, bool | None] = {}
        live = set(live_agents(state))
        for key, (watched, fd) in list(self._pidfds.items()):
            if key not in live or state["agents"][key].get("pid") != watched:  # gone, or joined again as another
                os.close(fd)                                                  # process: a readable stale pidfd
                del self._pidfds[key]                                         # would end every wait at once
        checkable = can_check()
        exited = self._exited()
        polled = 0
        for key in live:
            agent = state["agents"][key]
            pid = agent.get("pid")
            if not isinstance(pid, int) or agent.get("host") != here:
                continue
            if key in self._pidfds:  # readable or not, its pidfd says it all (no /proc read needed): the process
                running[key] = self._pidfds[key][1] not in exited  # it was opened on ran, or exited, whoever
                continue                                             # holds its pid now
            verdict = still_running(pid, agent.get("pid_start"))
            if verdict:
                if self._watch(key, pid):  # the pid cannot be reused while the pidfd is open: check it again
                    verdict = still_running(pid, agent.get("pid_start"))
                else:
                    polled += 1
            running[key] = True if verdict is None and checkable else verdict
        if polled and not self.polled:
            log.warning("%d agents' processes are looked at in /proc every round, %d watched by pidfd: no more "
                        "file descriptors may go to watching", polled, len(self._pidfds))
        self.polled = polled
        return running

    def _exited(self) -> set[int]:
        """The pidfds that are readable now: their processes have exited (one poll for all of them).

        A descriptor the poll calls invalid (POLLNVAL) is no verdict: it is not a pidfd of this watch any more
        (closed by mistake elsewhere in this process), so it is forgotten, never closed (its number may be another
        file's now), and its agent is looked at in /proc this round and watched anew."""
        if not self._pidfds:
            return set()
        poller = select.poll()
        for _pid, fd in self._pidfds.values():
            poller.register(fd, select.POLLIN)
        try:
            found = poller.poll(0)
        except OSError:
            found = []
            for key in list(self._pidfds):  # cannot tell: look in /proc for every one, and watch them anew
                del self._pidfds[key]
        exited = set()
        for fd, event in found:
            if event & select.POLLNVAL:
                for key in [key for key, (_pid, held) in self._pidfds.items() if held == fd]:
                    log.warning("the pidfd of agent %s is not valid any more: its process is looked at in /proc",
                                key)
                    del self._pidfds[key]
            else:
                exited.add(fd)
        return exited

    def _watch(self, key: str, pid: int) -> bool:
        """Hold a pidfd on `pid` for agent `key`, if the OS has pidfds and the budget allows; whether it does."""
        if not hasattr(os, "pidfd_open"):
            return False
        if len(self._pidfds) >= self._budget_now() and not self._raise():
            return False
        try:
            self._pidfds[key] = (pid, os.pidfd_open(pid))
        except OSError as error:
            if error.errno in _OUT_OF_DESCRIPTORS:  # the rest of the process needs some: give back a few, poll them
                self._budget = max(0, len(self._pidfds) - HEADROOM)
                for extra in list(self._pidfds)[self._budget:]:
                    os.close(self._pidfds.pop(extra)[1])
            return False  # or gone in between: the next look sees it
        return True

    def _budget_now(self) -> int:
        if self._budget is None:
            import resource

            soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
            self._budget = (MOST_DESCRIPTORS if soft == resource.RLIM_INFINITY else int(soft)) // 2
        return self._budget

    def _raise(self) -> bool:
        """Once: raise the soft limit and widen the budget; whether there is room for another pidfd now."""
        if self._raised:
            return False
        self._raised = True
        self._budget = max(self._budget_now(), raise_descriptor_limit() // 2)
        return len(self._pidfds) < self._budget
