"""The Lua that makes a push exactly-once: one EVALSHA per batch (one billed command on Upstash).

For each event, in order: XADD to the origin's stream under the id `<seq>-0`, with its body (`e`) and its link (`p`:
the seq of this origin's event pushed before it, `after` for the batch's first; 0 for the first ever), so that a
puller takes an entry as this origin's only when it follows the last one it took (entries.py). If the server already
holds that id (a resent batch, a retry after a timeout whose first try was applied), the XADD fails with "equal or
smaller than the target stream top item" and the event is skipped whole. Only an event that was new runs its effects
(effects.py): its channel stream entry, the original layout's keys, its contest, and, for a task transition, its place
in the arbiter's order (an `arbiter.ordered` fact under the arbiter's next number). A contest's first entrant wins:
HSETNX records it, INCR numbers the decision, and the decision is appended to the arbiter's stream under that number,
so every machine pulls it like any origin's event. Redis runs a script alone, so two machines' claims and task
transitions are ordered here, once.

What the script does not take on trust, because the server may have lost data or hold entries nobody should have
written:

- `after`: the seq the stream must already hold (the last event pushed before this batch). A stream that ends
  before it was emptied under the replicator (a restart without persistence, a flush): the script writes nothing and
  answers `POPKIT-BEHIND`, and the replicator works out again what to push instead of leaving a hole.
- An XADD refused as "equal or smaller" counts as already there only when the entry under that id is this event,
  body for body. Anything else at or after that id was not written by this origin's replicator (the only writer of
  the stream, pushing in order): it is removed, the stream's last id is set back (XSETID; where the server has no
  XSETID, the stream is rebuilt from the entries before it), and the event is added. The reply counts them.
- The arbiter's counter and contests must be able to take a task transition's number and a claim's decision (a
  key planted there with another type): else the script stops before the event, answering `POPKIT-ARBITER-KEYS`,
  so that it is pushed, and ordered or decided, once the key is deleted rather than pushed undecided for good.
- A decision number the arbiter's stream already passed (an entry planted there) moves the counter past it; one
  that cannot be written at all (a planted id at the largest number there is) is counted as undecided.

A new event's channel stream entry (the original layout's `pop:<channel>`: fields event, type, from, origin) is
written here rather than sent as a command of its own, capped near ARGV[4] entries (`MAXLEN ~`; 0: not capped).

ARGV: `after`, the number of events, the origin, the channel streams' cap, and the batch as one string
(effects.BatchText): per event a header of its seq, the lengths of its body, channel stream, type and sender, and
its number of effect commands; those four texts; then per command its words, length-prefixed. Returns {new,
already there, foreign entries removed, undecided contests, refused writes}.

The original layout's writes (the channel entry, the keys) are best effort: one the server refuses (a key of another
type planted under that name) is counted, not raised, since a script's error does not undo what it wrote before
it, and the event's origin entry is written already: raising would leave the event pushed with its other writes never
made, and stop every later push at the same key.
"""

from __future__ import annotations

BEHIND = "POPKIT-BEHIND"
ARBITER_KEYS = "POPKIT-ARBITER-KEYS"

_LAST_ID = """
local function last_id(key)
  local info = redis.pcall('XINFO', 'STREAM', key)
  if type(info) == 'table' and info.err then return 0 end
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then return tonumber(string.match(info[i + 1], '^(%d+)')) or 0 end
  end
  return 0
end
"""

PUSH = _LAST_ID + """
local stream = KEYS[1]
local after, count, origin, cap = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local batch, at = ARGV[5], 1
local find, sub, match = string.find, string.sub, string.match
local function word()
  local colon = find(batch, ':', at, true)
  local stop = colon + tonumber(sub(batch, at, colon - 1))
  at = stop + 1
  return sub(batch, colon + 1, stop)
end
local new, old, removed, undecided, refused = 0, 0, 0, 0, 0
local held = last_id(stream)
local link = ARGV[1]  -- each entry's `p`: the seq of this origin's entry before it
if held < after then
  return redis.error_reply('""" + BEHIND + """ the stream ends at ' .. held .. ', before ' .. after)
end
local function arbiter_fact(counter, facts, body)
  -- the arbiter's next number (past any planted entry), and the fact under it; 1 when it cannot be written
  local number = redis.call('INCR', counter)
  local passed = last_id(facts)
  if number <= passed then
    number = passed + 1
    redis.call('SET', counter, number)
  end
  local put = redis.pcall('XADD', facts, number .. '-0', 'e', body)
  if type(put) == 'table' and put.err then return 1 end
  return 0
end
local function drop_from(seq)
  local dropped = 0
  while true do
    local found = redis.call('XRANGE', stream, seq .. '-0', '+', 'COUNT', 1000)
    if #found == 0 then break end
    for _, entry in ipairs(found) do redis.call('XDEL', stream, entry[1]) end
    dropped = dropped + #found
  end
  local top = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
  local top_id = top[1] and top[1][1] or '0-0'
  local set = redis.pcall('XSETID', stream, top_id)
  if type(set) == 'table' and set.err then
    local kept = redis.call('XRANGE', stream, '-', '+')
    redis.call('DEL', stream)
    for _, entry in ipairs(kept) do redis.call('XADD', stream, entry[1], unpack(entry[2])) end
  end
  return dropped
end
for _ = 1, count do
  local seq, n_body, n_channel, n_kind, n_sender, commands, start =
    match(batch, '^(%d+) (%d+) (%d+) (%d+) (%d+) (%d+):()', at)
  local stop = start + n_body
  local body = sub(batch, start, stop - 1)
  start, stop = stop, stop + n_channel
  local channel = sub(batch, start, stop - 1)
  start, stop = stop, stop + n_kind
  local kind = sub(batch, start, stop - 1)
  start, stop = stop, stop + n_sender
  local sender = sub(batch, start, stop - 1)
  at = stop
  local effects = {}
  for c = 1, tonumber(commands) do
    local command = {}
    for w = 1, tonumber(word()) do command[w] = word() end
    effects[c] = command
    local checks = {}  -- the arbiter's keys must take the decision, or nothing of the event is written
    if command[1] == 'CONTEST' then checks = {{'INCRBY', command[5], 0}, {'HLEN', command[2]}} end
    if command[1] == 'ORDER' then checks = {{'INCRBY', command[2], 0}} end
    for _, check in ipairs(checks) do
      local answer = redis.pcall(unpack(check))
      if type(answer) == 'table' and answer.err then
        return redis.error_reply('""" + ARBITER_KEYS + """ ' .. check[2] ..
          ' cannot hold the decisions of the arbiter (' .. answer.err .. '): delete it; task changes wait until then')
      end
    end
  end
  local id = seq .. '-0'
  local fresh = tonumber(seq) > held  -- past the stream's last id before the batch (the batch's seqs rise)
  if fresh then
    redis.call('XADD', stream, id, 'e', body, 'p', link)
  else
    local added = redis.pcall('XADD', stream, id, 'e', body, 'p', link)
    fresh = not (type(added) == 'table' and added.err)
    if not fresh and not find(added.err, 'equal or smaller', 1, true) then return redis.error_reply(added.err) end
  end
  if not fresh then
    local there = redis.call('XRANGE', stream, id, id)
    local fields = there[1] and there[1][2]
    if not (fields and fields[1] == 'e' and fields[2] == body) then
      removed = removed + drop_from(seq)
      redis.call('XADD', stream, id, 'e', body, 'p', link)
      fresh = true
    end
  end
  link = seq
  if fresh then
    new = new + 1
    -- the channel stream entry
    local put
    if cap > 0 then
      put = redis.pcall('XADD', channel, 'MAXLEN', '~', ARGV[4], '*', 'event', body, 'type', kind, 'from', sender,
        'origin', origin)
    else
      put = redis.pcall('XADD', channel, '*', 'event', body, 'type', kind, 'from', sender, 'origin', origin)
    end
    if type(put) == 'table' and put.err then refused = refused + 1 end
    -- (end of the channel stream entry)
  else
    old = old + 1
  end
  for _, command in ipairs(effects) do
    if fresh then
      if command[1] == 'CONTEST' then
        if redis.call('HSETNX', command[2], command[3], command[4]) == 1 then
          undecided = undecided + arbiter_fact(command[5], command[6], command[7])
        end
      elseif command[1] == 'ORDER' then
        undecided = undecided + arbiter_fact(command[2], command[3], command[4])
      elseif command[1] == 'UNSET' then
        if redis.pcall('GET', command[2]) == command[3] then
          redis.call('DEL', command[2])
        end
      else
        local done = redis.pcall(unpack(command))
        if type(done) == 'table' and done.err then refused = refused + 1 end
      end
    end
  end
end
return {new, old, removed, undecided, refused}
"""

#: Put back into the arbiter's stream the facts (decisions, task transitions' places) a machine pulled before the
#: server lost them: KEYS the arbiter's stream, its contests and its counter; ARGV per fact its number, body, contest
#: ('' for a place in the order) and event.
#: A number the stream holds already is left alone; the counter ends at least at the highest number put back, so
#: later decisions come after every one that was known. Returns how many were put back.
RESTORE = _LAST_ID + """
local stream, contests, counter = KEYS[1], KEYS[2], KEYS[3]
local restored, highest = 0, 0
for at = 1, #ARGV, 4 do
  local number = tonumber(ARGV[at])
  if number > last_id(stream) then
    redis.call('XADD', stream, number .. '-0', 'e', ARGV[at + 1])
    restored = restored + 1
  end
  if ARGV[at + 2] ~= '' then redis.call('HSETNX', contests, ARGV[at + 2], ARGV[at + 3]) end
  if number > highest then highest = number end
end
if tonumber(redis.call('GET', counter) or '0') < highest then redis.call('SET', counter, highest) end
return restored
"""

#: Per stream in KEYS, with ARGV a pair per stream (the id just after the last entry the puller took as its origin's
#: own, and that entry's seq): {the stream's last id, the ids of the entries among the next FIRST_AFTER_COUNT that are
#: linked to that entry}. A cheap look at streams whose last entry read could not be used, to see whether their
#: writer has taken them back since: removed what the puller read past (the last id went back), or put its own entry
#: where the puller had read past already.
FIRST_AFTER_COUNT = 100
FIRST_AFTER = """
local found = {}
for i, key in ipairs(KEYS) do
  local last, linked = '0-0', {}
  local info = redis.pcall('XINFO', 'STREAM', key)
  if type(info) == 'table' and not info.err then
    for f = 1, #info, 2 do
      if info[f] == 'last-generated-id' then last = info[f + 1] end
    end
    local entries = redis.call('XRANGE', key, ARGV[2 * i - 1], '+', 'COUNT', """ + str(FIRST_AFTER_COUNT) + """)
    for _, entry in ipairs(entries) do
      local fields = entry[2]
      for f = 1, #fields, 2 do
        if fields[f] == 'p' and fields[f + 1] == ARGV[2 * i] then linked[#linked + 1] = entry[1] end
      end
    end
  end
  found[i] = {last, linked}
end
return found
"""
