"""The Lua that makes a push exactly-once: one EVALSHA per batch (one billed command on Upstash).

For each event, in order: XADD to the origin's stream under the id `<seq>-0`. If the server already holds that id
(a resent batch, a retry after a timeout whose first try was applied), the XADD fails with "equal or smaller than the
target stream top item" and the event is skipped whole. Only an event that was new runs its effects (effects.py):
its channel stream entry, the original layout's keys, and its contest. A contest's first entrant wins: HSETNX records
it, INCR numbers the decision, and the decision is appended to the arbiter's stream under that number, so every
machine pulls it like any origin's event. Redis runs a script alone, so two machines' claims are ordered here, once.

ARGV: the number of events; then per event its seq, its body, its number of effect commands, and per command the
number of words and the words. Returns {new, already there}.
"""

from __future__ import annotations

PUSH = """
local stream = KEYS[1]
local at = 1
local count = tonumber(ARGV[at]); at = at + 1
local new, old = 0, 0
for _ = 1, count do
  local seq, body, commands = ARGV[at], ARGV[at + 1], tonumber(ARGV[at + 2]); at = at + 3
  local added = redis.pcall('XADD', stream, seq .. '-0', 'e', body)
  local fresh = not (type(added) == 'table' and added.err)
  if not fresh and not string.find(added.err, 'equal or smaller', 1, true) then
    return redis.error_reply(added.err)
  end
  if fresh then new = new + 1 else old = old + 1 end
  for _ = 1, commands do
    local words = tonumber(ARGV[at])
    local command = {}
    for w = 1, words do command[w] = ARGV[at + w] end
    at = at + words + 1
    if fresh then
      if command[1] == 'CONTEST' then
        if redis.call('HSETNX', command[2], command[3], command[4]) == 1 then
          local number = redis.call('INCR', command[5])
          redis.call('XADD', command[6], number .. '-0', 'e', command[7])
        end
      else
        redis.call(unpack(command))
      end
    end
  end
end
return {new, old}
"""
