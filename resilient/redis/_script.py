"""The shared breaker's transitions, as one Lua script run atomically by Redis.

Every instance's local core keeps counting; only the decisions that two
instances could otherwise make differently at the same moment (open on the
fleet's counts, admit a half-open probe, end a half-open period, manual
control) are made here, so no interleaving of instances can, for example,
admit more probes than ``half_open_max_calls``. Time is Redis's own
(``TIME``), so hosts with skewed clocks agree on when a breaker opened.

Keys of a breaker ``NAME`` in namespace ``NS``, with ``B = NS:cb:{E}`` where
``E`` encodes the name (``resilient.redis._keys``: no two names share a
key, and all of one breaker's keys share a cluster slot):

- ``B`` hash: ``state``, ``epoch`` (bumped by every transition),
  ``incarnation`` (when the hash was made: a Redis that lost its data is told
  apart from an old epoch), ``opened_at``, ``run`` (the fleet's consecutive
  failures), ``last_ok`` (when the fleet's latest success happened, in
  Redis's time), ``probe_ok``, ``calls``/``failures`` (since the last close),
  ``openings`` (in a row, no close between), ``recovery`` (how long each
  opening in a row stays open) and ``threshold`` (as the last instance
  configured them), ``changed_at``.
- ``B:fails`` zset: ``instance:number`` -> when that failure happened (in
  Redis's time): the failures later than ``last_ok``, the fleet's run.
- ``B:runners`` zset: instance -> when its latest failure of the run
  happened (quorum).
- ``B:window`` zset: the fleet's failure-rate window. A count window: one
  member per segment (``instance:number:kind:count``: ``count`` outcomes of
  one kind, failure and/or slow) scored by when it happened, the newest
  ``size`` outcomes of the fleet; a time window: one member per bucket
  (scored by its number, fleet time // width), ``n`` buckets at most. The
  totals are ``wcalls``/``wfailures``/``wslow`` in ``B``.
- ``B:buckets`` hash: a time window's counts, ``c:BUCKET``, ``f:BUCKET``,
  ``s:BUCKET``.
- ``B:applied`` hash: instance -> the number of its newest segment merged
  (a segment sent again counts once).
- ``B:raters`` zset: instance -> when its latest failure or slow call in
  the window happened (quorum for a rate).
- ``B:probes`` zset: probe id -> when it was admitted (a lease, so
  a crashed instance cannot hold a probe forever).
- ``B:instances`` zset: instance -> when it last synced.

``NS:breakers`` (a set of every name, as UTF-8 bytes) lies in another slot,
so the script never touches it: the storage adds a name there itself when
a reply says the breaker's hash was just made.

Each transition publishes the name on ``NS:changes``.
"""

from __future__ import annotations

from ._keys import tagged

__all__ = ["ARG_COUNT", "SCRIPT", "keys", "names_key"]


def keys(namespace: str, name: str | bytes) -> list[str]:
    """The keys of breaker ``name``: one cluster slot, no other name's."""
    base = tagged(namespace, "cb", name)
    return [
        base,
        f"{base}:fails",
        f"{base}:raters",
        f"{base}:probes",
        f"{base}:instances",
        f"{base}:runners",
        f"{base}:window",
        f"{base}:buckets",
        f"{base}:applied",
    ]


def names_key(namespace: str) -> str:
    return f"{namespace}:breakers"


# ARGV: op, name, instance, channel, then the config (empty: use the stored
# value): recovery, threshold, half_open_max, success_threshold, quorum,
# window (``kind,size,n,minimum_calls,failure_rate,slow_rate``: kind
# ``count`` (size outcomes) or ``time`` (n buckets of size seconds); empty:
# no rate), lease; then the op's own arguments.
ARG_COUNT = 11

SCRIPT = r"""
local H, FAILS, RATERS, PROBES, INST, RUNNERS = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local WIN, BUCKETS, APPLIED = KEYS[7], KEYS[8], KEYS[9]
local op, name, me, channel = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000

local function cfg(i, field)
  if ARGV[i] ~= '' then return tonumber(ARGV[i]) end
  return tonumber(redis.call('HGET', H, field) or '0')
end
local function field(f, default)
  local v = redis.call('HGET', H, f)
  if v then return v end
  return default
end

-- ARGV 5: how long the 1st, 2nd, ... opening in a row stays open, comma
-- separated (the instances' own rule, worked out by them); the last one
-- holds for every later opening.
local recovery = {}
for x in string.gmatch(ARGV[5] ~= '' and ARGV[5] or field('recovery', '0'), '[^,]+') do
  recovery[#recovery + 1] = tonumber(x)
end
if #recovery == 0 then recovery[1] = 0 end

local function open_for()
  local k = tonumber(field('openings', '1'))
  if k < 1 then k = 1 end
  if k > #recovery then k = #recovery end
  return recovery[k]
end

local function remaining(state)
  if state == 'forced_open' then return 'inf' end
  if state ~= 'open' then return '0' end
  local left = tonumber(field('opened_at', '0')) + open_for() - now
  if left < 0 then left = 0 end
  return tostring(left)
end

local function reply(extra)
  local state = field('state', 'closed')
  local out = {state, remaining(state), tonumber(field('epoch', '0')), field('incarnation', '')}
  if extra then out[5] = extra end
  return out
end

local function move(to)
  redis.call('HINCRBY', H, 'epoch', 1)
  redis.call('HSET', H, 'state', to, 'run', 0, 'probe_ok', 0, 'changed_at', tostring(now))
  redis.call('HDEL', H, 'last_ok', 'older', 'older_at', 'wnewest')
  redis.call('HSET', H, 'wcalls', 0, 'wfailures', 0, 'wslow', 0)
  if to == 'open' then
    -- The k-th opening in a row (no close between) stays open longer.
    redis.call('HINCRBY', H, 'openings', 1)
    redis.call('HSET', H, 'opened_at', tostring(now))
  end
  if to == 'closed' then redis.call('HSET', H, 'calls', 0, 'failures', 0, 'openings', 0) end
  redis.call('DEL', FAILS, RUNNERS, RATERS, PROBES, WIN, BUCKETS)
  redis.call('PUBLISH', channel, name)
end

-- The fleet's failure-rate window (ARGV 10; see resilient.circuit_breaker.merge,
-- its model). ``spec``: kind, size (or bucket width), n, minimum_calls,
-- failure rate, slow-call rate.
local spec = {}
for x in string.gmatch(ARGV[10] .. ',', '([^,]*),') do spec[#spec + 1] = x end
local wkind = spec[1] or ''

local function wtotals(calls, failures, slow)
  redis.call('HINCRBY', H, 'wcalls', calls)
  if failures ~= 0 then redis.call('HINCRBY', H, 'wfailures', failures) end
  if slow ~= 0 then redis.call('HINCRBY', H, 'wslow', slow) end
end

local function bad(kind) return kind % 2, math.floor(kind / 2) % 2 end

-- Time window: drop the buckets before ``first``.
local function drop_before(first)
  local old = redis.call('ZRANGEBYSCORE', WIN, '-inf', '(' .. string.format('%d', first))
  for _, b in ipairs(old) do
    local c = redis.call('HMGET', BUCKETS, 'c:' .. b, 'f:' .. b, 's:' .. b)
    wtotals(-tonumber(c[1] or '0'), -tonumber(c[2] or '0'), -tonumber(c[3] or '0'))
    redis.call('HDEL', BUCKETS, 'c:' .. b, 'f:' .. b, 's:' .. b)
  end
  if #old > 0 then
    redis.call('ZREMRANGEBYSCORE', WIN, '-inf', '(' .. string.format('%d', first))
  end
end

-- Merge segments ARGV[at], ... (number, local time, kind, count each) of
-- this instance, ``offset`` making their times the fleet's.
local function merge_window(at, count, offset)
  local shape = wkind .. ',' .. (spec[2] or '') .. ',' .. (spec[3] or '')
  if field('wshape', '') ~= shape then
    -- Another window (a first sync, or instances reconfigured): start over.
    redis.call('DEL', WIN, BUCKETS, RATERS)
    redis.call('HSET', H, 'wshape', shape, 'wcalls', 0, 'wfailures', 0, 'wslow', 0)
    redis.call('HDEL', H, 'wnewest')
  end
  local last = tonumber(redis.call('HGET', APPLIED, me) or '0')
  local width, nb = tonumber(spec[2]), tonumber(spec[3])
  local newest = nil
  if wkind == 'time' then
    newest = tonumber(field('wnewest', ''))
    local b = math.floor(now / width)
    if not newest or b > newest then newest = b end
    drop_before(newest - nb + 1)
  end
  for i = at, at + 4 * count - 1, 4 do
    local number = tonumber(ARGV[i])
    if number > last then
      last = number
      local t = tonumber(ARGV[i + 1]) + offset
      local kind, n = tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
      local f, s = bad(kind)
      local kept = true
      if wkind == 'count' then
        redis.call('ZADD', WIN, t, me .. ':' .. ARGV[i] .. ':' .. ARGV[i + 2] .. ':' .. ARGV[i + 3])
      else
        local b = math.floor(t / width)
        if b <= newest - nb then
          kept = false  -- slid out already
        else
          local key = string.format('%d', b)
          redis.call('ZADD', WIN, b, key)
          redis.call('HINCRBY', BUCKETS, 'c:' .. key, n)
          if f == 1 then redis.call('HINCRBY', BUCKETS, 'f:' .. key, n) end
          if s == 1 then redis.call('HINCRBY', BUCKETS, 's:' .. key, n) end
          if b > newest then
            newest = b
            drop_before(newest - nb + 1)
          end
        end
      end
      if kept then
        wtotals(n, f * n, s * n)
        if f + s > 0 then
          local seen = redis.call('ZSCORE', RATERS, me)
          if not seen or tonumber(seen) < t then redis.call('ZADD', RATERS, t, me) end
        end
      end
    end
  end
  if last > 0 then redis.call('HSET', APPLIED, me, string.format('%d', last)) end
  if wkind == 'time' then
    redis.call('HSET', H, 'wnewest', string.format('%d', newest))
  else
    -- The newest ``size`` outcomes: the oldest segments go, the last one
    -- of them perhaps in part.
    local excess = tonumber(field('wcalls', '0')) - width
    while excess > 0 do
      local oldest = redis.call('ZRANGE', WIN, 0, 0, 'WITHSCORES')
      local prefix, kind, n = string.match(oldest[1], '^(.*):(%d+):(%d+)$')
      kind, n = tonumber(kind), tonumber(n)
      local drop = n
      if excess < drop then drop = excess end
      redis.call('ZREM', WIN, oldest[1])
      if drop < n then
        redis.call('ZADD', WIN, oldest[2], prefix .. ':' .. kind .. ':' .. (n - drop))
      end
      local f, s = bad(kind)
      wtotals(-drop, -f * drop, -s * drop)
      excess = excess - drop
    end
  end
end

-- The fleet time of the oldest outcome the window holds (nil: none).
local function window_start()
  if wkind == 'count' then
    local oldest = redis.call('ZRANGE', WIN, 0, 0, 'WITHSCORES')
    if #oldest == 0 then return nil end
    return tonumber(oldest[2])
  end
  local newest = tonumber(field('wnewest', ''))
  if not newest then return nil end
  return (newest - tonumber(spec[3]) + 1) * tonumber(spec[2])
end

-- Whether the window's rates call for opening, from enough instances.
local function rates_trip(quorum)
  local calls = tonumber(field('wcalls', '0'))
  if wkind == '' or calls == 0 or calls < tonumber(spec[4]) then return false end
  local trip = (spec[5] ~= '' and tonumber(field('wfailures', '0')) / calls >= tonumber(spec[5]))
    or (spec[6] ~= '' and tonumber(field('wslow', '0')) / calls >= tonumber(spec[6]))
  if not trip then return false end
  local start = window_start()
  if start then
    redis.call('ZREMRANGEBYSCORE', RATERS, '-inf', '(' .. string.format('%.17g', start))
  end
  return redis.call('ZCARD', RATERS) >= quorum
end

-- A missing hash is a breaker nobody has made yet, or a Redis that lost its
-- data: start from the caller's state (a CLI or a fresh instance: closed).
local function ensure(seed_state, seed_remaining)
  if redis.call('EXISTS', H) == 1 then return 0 end
  redis.call('HSET', H, 'state', seed_state, 'epoch', 1, 'incarnation', tostring(now),
    'run', 0, 'probe_ok', 0, 'calls', 0, 'failures', 0, 'changed_at', tostring(now))
  if seed_state == 'open' then
    redis.call('HSET', H, 'openings', 1)
    redis.call('HSET', H, 'opened_at', tostring(now - open_for() + seed_remaining))
  end
  return 1
end

if op == 'sync' then
  -- ARGV 12..: successes, failures, clock offset (fleet time = local time +
  -- offset; empty: learn it from this request), k window segments, local
  -- incarnation, local epoch, seed state, seed remaining, local time of
  -- sending, local time of the latest success (empty: none new), the
  -- number of new failures of the instance's current run sent without their
  -- times (older than the timed ones), then the k window segments (number,
  -- local time, kind, count), then (failure number, local time) pairs of
  -- the newest failures of that run.
  local ok, bad, segments = tonumber(ARGV[12]), tonumber(ARGV[13]), tonumber(ARGV[15])
  local pairs_at = 23 + 4 * segments
  local offset = ARGV[14]
  if offset == '' then offset = now - tonumber(ARGV[20]) else offset = tonumber(offset) end
  local seeded = ensure(ARGV[18], tonumber(ARGV[19]))
  redis.call('HSET', H, 'recovery', ARGV[5], 'threshold', ARGV[6], 'quorum', ARGV[9],
    'window', ARGV[10])
  redis.call('ZADD', INST, now, me)
  local gone = redis.call('ZRANGEBYSCORE', INST, '-inf', now - 86400)
  if #gone > 0 then
    redis.call('HDEL', APPLIED, unpack(gone))
    redis.call('ZREMRANGEBYSCORE', INST, '-inf', now - 86400)
  end
  local state = field('state', 'closed')
  -- Counts made under another epoch belong to a period that is over; an
  -- instance's first sync (epoch 0) brings the counts it made before.
  local current = ARGV[16] == field('incarnation', '') and ARGV[17] == field('epoch', '')
  if (current or ARGV[17] == '0')
      and (state == 'closed' or state == 'forced_closed') then
    if ok + bad > 0 then
      redis.call('HINCRBY', H, 'calls', ok + bad)
      redis.call('HINCRBY', H, 'failures', bad)
    end
    local was_run = tonumber(field('run', '0'))
    -- The fleet's run: the failures later than the latest success anywhere,
    -- by when they happened (not by when they were reported). The oldest
    -- of a long run are only counted (``older``, none later than ``older_at``).
    local last_ok = redis.call('HGET', H, 'last_ok')
    if last_ok then last_ok = tonumber(last_ok) end
    local older = tonumber(field('older', '0'))
    local older_at = tonumber(field('older_at', '0'))
    local kept = was_run - older  -- failures kept one by one, unless they change
    local touched = false
    if ARGV[21] ~= '' then
      local t = tonumber(ARGV[21]) + offset
      if not last_ok or t > last_ok then
        last_ok = t
        redis.call('HSET', H, 'last_ok', string.format('%.17g', t))
        if was_run > 0 then
          redis.call('ZREMRANGEBYSCORE', FAILS, '-inf', t)
          redis.call('ZREMRANGEBYSCORE', RUNNERS, '-inf', t)
          touched = true
        end
        if t >= older_at then older = 0 end
      end
    end
    local first = nil
    for i = pairs_at, #ARGV - 1, 2 do
      local t = tonumber(ARGV[i + 1]) + offset
      if not first then first = t end
      if not last_ok or t > last_ok then
        redis.call('ZADD', FAILS, t, me .. ':' .. ARGV[i])
        touched = true
        local seen = redis.call('ZSCORE', RUNNERS, me)
        if not seen or tonumber(seen) < t then redis.call('ZADD', RUNNERS, t, me) end
      end
    end
    -- Failures of this instance's run too old to have been kept one by one.
    local untimed = tonumber(ARGV[22])
    if untimed > 0 and first and (not last_ok or first > last_ok) then
      older = older + untimed
      if first > older_at then older_at = first end
    end
    local threshold = cfg(6, 'threshold')
    if touched then kept = redis.call('ZCARD', FAILS) end
    if kept > threshold then
      -- Enough to open on are kept one by one (memory stays bounded).
      local drop = kept - threshold
      local newest = redis.call('ZRANGE', FAILS, drop - 1, drop - 1, 'WITHSCORES')
      redis.call('ZREMRANGEBYRANK', FAILS, 0, drop - 1)
      older = older + drop
      if tonumber(newest[2]) > older_at then older_at = tonumber(newest[2]) end
      kept = threshold
    end
    local run = kept + older
    redis.call('HSET', H, 'run', run, 'older', older, 'older_at', string.format('%.17g', older_at))
    if was_run == 0 and run > 0 then
      -- A run of failures starts: instances with successes to report end it.
      redis.call('PUBLISH', channel, name)
    end
    if wkind ~= '' then merge_window(23, segments, offset) end
    if state == 'closed' then
      local quorum = cfg(9, 'quorum')
      if (run >= threshold and redis.call('ZCARD', RUNNERS) >= quorum)
          or (segments > 0 and rates_trip(quorum)) then
        move('open')
      end
    end
  end
  local out = reply(seeded)
  out[6] = tonumber(field('run', '0'))
  out[7] = string.format('%.17g', now)
  out[8] = tonumber(field('wfailures', '0')) + tonumber(field('wslow', '0'))
  return out
end

if op == 'acquire' then
  -- ARGV 12: probe id
  if redis.call('EXISTS', H) == 0 then return {'missing'} end
  local state = field('state', 'closed')
  if state == 'open' and now - tonumber(field('opened_at', '0')) >= open_for() then
    move('half_open')
    state = 'half_open'
  end
  if state == 'half_open' then
    redis.call('ZREMRANGEBYSCORE', PROBES, '-inf', now - cfg(11, 'lease'))
    if redis.call('ZCARD', PROBES) < cfg(7, 'half_open_max') then
      redis.call('ZADD', PROBES, now, ARGV[12])
      return reply('probe')
    end
    return reply('reject')
  end
  if state == 'open' or state == 'forced_open' then return reply('reject') end
  return reply('admit')
end

if op == 'finish' then
  -- ARGV 12..: probe id, outcome, the epoch it was admitted in
  if field('state', '') ~= 'half_open' or field('epoch', '') ~= ARGV[14] then return reply() end
  if redis.call('ZREM', PROBES, ARGV[12]) == 0 then return reply() end
  if ARGV[13] == 'failure' then
    move('open')
  elseif ARGV[13] == 'success' then
    if redis.call('HINCRBY', H, 'probe_ok', 1) >= cfg(8, 'success_threshold') then
      move('closed')
    else
      redis.call('PUBLISH', channel, name)  -- a probe slot is free again
    end
  else
    redis.call('PUBLISH', channel, name)
  end
  return reply()
end

if op == 'control' then
  -- ARGV 12: force_open, force_closed, release or reset
  local seeded = ensure('closed', 0)
  local action, state = ARGV[12], field('state', 'closed')
  if action == 'force_open' and state ~= 'forced_open' then move('forced_open')
  elseif action == 'force_closed' and state ~= 'forced_closed' then move('forced_closed')
  elseif action == 'reset' then move('closed')
  elseif action == 'release' and (state == 'forced_open' or state == 'forced_closed') then
    move('closed')
  end
  local out = reply(redis.call('ZCARD', INST))
  out[6] = seeded
  return out
end

if op == 'peek' then
  -- Another instance's transition was published: fetch the state, cheaply.
  if redis.call('EXISTS', H) == 0 then return {'missing'} end
  local out = reply(0)
  out[6] = tonumber(field('run', '0'))
  out[7] = string.format('%.17g', now)
  out[8] = tonumber(field('wfailures', '0')) + tonumber(field('wslow', '0'))
  return out
end

if op == 'read' then
  -- Nothing changes; an OPEN breaker whose timer ran out reads as half_open.
  if redis.call('EXISTS', H) == 0 then return {'missing'} end
  local out = reply()
  if out[1] == 'open' and tonumber(out[2]) <= 0 then out[1] = 'half_open' end
  local seen = redis.call('ZCOUNT', INST, now - 60, '+inf')
  if wkind == '' then
    -- (The CLI sends no config: the window as the instances last sent it.)
    spec = {}
    for x in string.gmatch(field('window', '') .. ',', '([^,]*),') do spec[#spec + 1] = x end
    wkind = spec[1] or ''
  end
  local raters = 0
  local start = nil
  if wkind ~= '' then start = window_start() end
  if start then raters = redis.call('ZCOUNT', RATERS, start, '+inf') end
  return {out[1], out[2], out[3], out[4], tonumber(field('run', '0')),
    redis.call('ZCARD', RUNNERS), raters, redis.call('ZCARD', PROBES),
    seen, redis.call('ZCARD', INST), tonumber(field('calls', '0')),
    tonumber(field('failures', '0')), field('changed_at', '0'), field('threshold', ''),
    tonumber(field('wcalls', '0')), tonumber(field('wfailures', '0')),
    tonumber(field('wslow', '0'))}
end

return redis.error_reply('resilient: unknown op ' .. tostring(op))
"""
