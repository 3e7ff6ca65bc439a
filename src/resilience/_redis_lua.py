"""The Lua script behind ``RedisStorage``: every operation on a circuit is one call of it.

Running inside Redis makes each operation atomic: an admission, a batch of outcomes with
the transitions they cause, or an operator's order happens whole or not at all, whatever
other processes do at the same moment. Time comes from the server (``TIME``), in
microseconds, so every process reads one clock.

KEYS[1] is the circuit's state (a string of 25 packed doubles, 200 bytes), KEYS[2] its
window (a string: one byte per call for a count window, twelve bytes per bucket for a
time window). Nothing else is touched, so Redis
Cluster can route the call by the keys' shared hash tag.

ARGV: 1 operation (a: admit, r: record, f: force, s: stats), 2 TTL in ms ('' keeps the
stored one), 3 calls rejected from a cache, 4 generation, 5 outcomes, 6 stale outcomes,
7 the policy (admit, record) or the state to force (force), 8 (force only) create ('1') or
leave an unknown circuit alone ('0'). The policy is one string of comma-separated fields
(few arguments keep the client's encoding cheap): c(onsecutive) or r(ate), threshold,
window n(calls) or t(ime), window size (calls or seconds), minimum calls, slow-call rate
('' for none), success threshold, half-open slots, and the recovery waits in microseconds,
separated by ';', for the 1st, 2nd, ... trip in a row (the last repeats).

Reply: one comma-separated string (cheaper for the client to read than an array):
state, generation, microseconds until a trial (-1 if not OPEN), the time it left
CLOSED (-1), now, admitted (1/0), whether a metrics-only trip was counted (1/0); the
stats operation adds failure count, success count, window calls (-1 for a consecutive
policy), minimum calls, slow calls, shadow trips, the fleet's successes, failures,
rejections and ignored calls, and the time of the last transition. A stats or
non-creating force on an unknown circuit replies nil.
"""

SCRIPT = r"""
local H, W = KEYS[1], KEYS[2]
local op = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local LEASE = 30000000  -- a trial slot not given back within 30 s is presumed lost

-- The circuit's fields, packed as big-endian doubles in one string: one GET and one SET
-- per call, which costs Redis far less than a hash's many fields.
local F = {'st', 'gen', 'since', 'retry', 'trips', 'run', 'ok', 'trial', 'trial_at', 'chg',
  'wkk', 'wks', 'calls', 'fails', 'slow', 'nxt', 'head', 'shadow', 'n_s', 'n_f', 'n_r', 'n_i',
  'pol', 'mc', 'ttl'}
local FORMAT = '>' .. string.rep('d', #F)
local OPTIONAL = {since = true, retry = true, head = true}  -- stored as -1 when absent
local STATES = {'closed', 'open', 'half_open', 'forced_open', 'disabled', 'metrics_only'}
local STATE_CODE = {}
for i, name in ipairs(STATES) do STATE_CODE[name] = i end

local packed = redis.call('GET', H)
local s = {}
if packed then
  local values = {struct.unpack(FORMAT, packed)}
  for i, k in ipairs(F) do
    local v = values[i]
    if not (OPTIONAL[k] and v < 0) then s[k] = v end
  end
  s.st = STATES[s.st]
  s.pol = ({'c', 'r'})[s.pol]
else
  if op == 's' or (op == 'f' and ARGV[8] == '0') then return false end
  for _, k in ipairs(F) do
    if not OPTIONAL[k] then s[k] = 0 end
  end
  s.st = 'closed'
  s.pol = nil
  s.gen = now  -- a circuit made anew (after a restart) never reuses a generation
  s.chg = now
end
local ttl = tonumber(ARGV[2]) or (s.ttl > 0 and s.ttl) or 86400000
s.ttl = ttl
local shadow_flag = 0

local P = nil  -- the policy's fields, split when first needed
local function policy(i)
  if not P then
    P = {}
    for v in string.gmatch(ARGV[7] .. ',', '([^,]*),') do P[#P + 1] = v end
  end
  return P[i]
end

local function clear_window()
  s.calls, s.fails, s.slow, s.nxt, s.head = 0, 0, 0, 0, nil
  redis.call('DEL', W)
end

local function restart()
  s.gen = s.gen + 1
  s.run, s.ok, s.trial = 0, 0, 0
  clear_window()
end

local function recovery(trips)
  local waits = {}
  for v in string.gmatch(policy(9) or '', '[^;]+') do waits[#waits + 1] = tonumber(v) end
  if #waits == 0 then return 30000000 end
  return waits[math.min(trips, #waits)]
end

local function to(new)
  if s.st == new then return false end
  s.st = new
  s.chg = now
  restart()
  if new == 'open' or new == 'forced_open' or new == 'half_open' then
    if not s.since then s.since = now end
    if new == 'open' then
      s.trips = s.trips + 1
      s.retry = now + recovery(s.trips)
    elseif new == 'forced_open' then
      s.retry = nil
    end
  else
    s.since, s.retry, s.trips = nil, nil, 0
  end
  return true
end

local function bucket_get(b)
  local v = redis.call('GETRANGE', W, b * 12, b * 12 + 11)
  if #v < 12 then return 0, 0, 0 end
  local c, f, sl = struct.unpack('>I4I4I4', v)
  return c, f, sl
end

local function advance(seconds)
  local n = math.ceil(seconds)
  local index = math.floor(now / (seconds * 1000000 / n))
  if s.head == nil or index < s.head then
    s.head = index
  elseif index > s.head then
    for k = s.head + 1, math.min(index, s.head + n) do
      local b = k % n
      local c, f, sl = bucket_get(b)
      if c > 0 then
        s.calls, s.fails, s.slow = s.calls - c, s.fails - f, s.slow - sl
        redis.call('SETRANGE', W, b * 12, struct.pack('>I4I4I4', 0, 0, 0))
      end
    end
    s.head = index
  end
  return index % n
end

local function rate_record(failed, slow)
  local kind, size = (policy(3) == 'n') and 1 or 2, tonumber(policy(4))
  if s.wkk ~= kind or s.wks ~= size then
    clear_window()
    s.wkk, s.wks = kind, size
  end
  if policy(3) == 'n' then
    local size = tonumber(policy(4))
    local i = s.nxt
    if s.calls >= size then
      local old = (string.byte(redis.call('GETRANGE', W, i, i)) or 48) - 48
      s.fails = s.fails - old % 2
      s.slow = s.slow - math.floor(old / 2)
    else
      s.calls = s.calls + 1
    end
    redis.call('SETRANGE', W, i, string.char(48 + failed + 2 * slow))
    s.nxt = (i + 1) % size
  else
    local b = advance(tonumber(policy(4)))
    local c, f, sl = bucket_get(b)
    redis.call('SETRANGE', W, b * 12, struct.pack('>I4I4I4', c + 1, f + failed, sl + slow))
    s.calls = s.calls + 1
  end
  s.fails = s.fails + failed
  s.slow = s.slow + slow
  s.pol, s.mc = 'r', tonumber(policy(5))
  if s.calls < s.mc then return false end
  -- Divide rather than multiply, as the in-memory breaker does: 3 / 10 >= 0.3 holds.
  if s.fails / s.calls >= tonumber(policy(2)) then return true end
  local slow_rate = tonumber(policy(6))
  return slow_rate ~= nil and s.slow / s.calls >= slow_rate
end

local function consecutive_record(failed)
  s.pol, s.mc = 'c', 0
  if failed == 1 then
    s.run, s.ok = s.run + 1, 0
    return s.run >= tonumber(policy(2))
  end
  s.run, s.ok = 0, s.ok + 1
  return false
end

local function trip()
  if s.st == 'metrics_only' then
    s.shadow = s.shadow + 1
    shadow_flag = 1
    restart()
  else
    to('open')
  end
end

local function total(c)
  if c == 's' or c == 'S' then
    s.n_s = s.n_s + 1
  elseif c == 'f' or c == 'F' then
    s.n_f = s.n_f + 1
  else
    s.n_i = s.n_i + 1
  end
end

if s.st == 'open' and s.retry and now >= s.retry then to('half_open') end

local admitted = 1
if op == 'a' then
  s.n_r = s.n_r + (tonumber(ARGV[3]) or 0)
  if s.st == 'half_open' then
    local slots = tonumber(policy(8))
    if s.trial >= slots and now - s.trial_at >= LEASE then s.trial = 0 end
    if s.trial < slots then
      s.trial = s.trial + 1
      s.trial_at = now
    else
      admitted = 0
    end
  elseif s.st == 'open' or s.st == 'forced_open' then
    admitted = 0
  end
  if admitted == 0 then s.n_r = s.n_r + 1 end
elseif op == 'r' then
  s.n_r = s.n_r + (tonumber(ARGV[3]) or 0)
  local stale = ARGV[6]
  for i = 1, #stale do total(string.sub(stale, i, i)) end
  local gen = tonumber(ARGV[4])
  local outcomes = ARGV[5]
  for i = 1, #outcomes do
    local c = string.sub(outcomes, i, i)
    total(c)
    if gen == s.gen and c ~= 'i' then
      local failed = (c == 'f' or c == 'F') and 1 or 0
      local slow = (c == 'S' or c == 'F') and 1 or 0
      if s.st == 'half_open' then
        s.trial = math.max(0, s.trial - 1)
        if failed == 1 then
          to('open')
        else
          s.ok = s.ok + 1
          if s.ok >= tonumber(policy(7)) then to('closed') end
        end
      elseif s.st == 'closed' or s.st == 'metrics_only' then
        local trips
        if policy(1) == 'r' then
          trips = rate_record(failed, slow)
        else
          trips = consecutive_record(failed)
        end
        if trips then trip() end
      end
    elseif gen == s.gen and s.st == 'half_open' then
      s.trial = math.max(0, s.trial - 1)  -- an ignored (cancelled) trial gives its slot back
    end
  end
elseif op == 'f' then
  local new = ARGV[7]
  if new ~= 'closed' and new ~= 'forced_open' and new ~= 'disabled' and new ~= 'metrics_only' then
    return redis.error_reply('ERR resilience: cannot force state ' .. new)
  end
  if not to(new) and new == 'closed' then restart() end
elseif op == 's' then
  if s.wkk == 2 then advance(s.wks) end
end

local values = {}
for i, k in ipairs(F) do
  local v = s[k]
  if k == 'st' then
    v = STATE_CODE[v]
  elseif k == 'pol' then
    v = (v == 'c' and 1) or (v == 'r' and 2) or 0
  end
  values[i] = v or -1
end
local data = struct.pack(FORMAT, unpack(values))
if data ~= packed then
  redis.call('SET', H, data, 'PX', ttl)
else
  redis.call('PEXPIRE', H, ttl)
end
if s.wkk > 0 then redis.call('PEXPIRE', W, ttl) end

local function int(v) return string.format('%.0f', v) end
local retry = -1
if s.st == 'open' and s.retry then retry = math.max(0, s.retry - now) end
local reply = {s.st, int(s.gen), int(retry), int(s.since or -1), int(now), admitted, shadow_flag}
if op == 's' then
  local fc, sc, calls = s.run, s.ok, -1
  if s.st == 'half_open' then
    fc, sc = 0, s.ok
  elseif s.pol == 'r' then
    fc, sc, calls = s.fails, s.calls - s.fails, s.calls
  end
  for _, v in ipairs({fc, sc, calls, s.mc, s.slow, s.shadow, s.n_s, s.n_f, s.n_r, s.n_i, s.chg}) do
    reply[#reply + 1] = int(v)
  end
end
return table.concat(reply, ',')
"""

GCRA_DOC = """The script behind a fleet-wide ``RateLimiter``: one call decides one request.

KEYS[1] is the limit's key: two packed doubles, the anchor (server microseconds) and the
units admitted since it, so the theoretical arrival time is ``anchor + units * T``
(recomputed, never summed, so rounding errors do not pile up). It expires when that
time passes: an idle limit holds no key.

ARGV: 1 the emission interval T and 2 the tolerance ``burst * T``, both in microseconds;
3 the request's cost; 4 the longest wait accepted, in microseconds (0: none).

Reply: one integer (the cheapest reply to send and parse). ``>= 0``: admitted, and its
turn comes that many microseconds from now (0: at once); ``< 0``: refused, nothing is
written, and the same request would pass ``-reply`` microseconds from now (rounded up).
Times are the server's (``TIME``): every process reads one clock.
"""

GCRA_SCRIPT = r"""
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local interval, tolerance = tonumber(ARGV[1]), tonumber(ARGV[2])
local cost, limit = tonumber(ARGV[3]), tonumber(ARGV[4])
local anchor, units, ahead = now, 0, 0
local packed = redis.call('GET', KEYS[1])
if packed then
  anchor, units = struct.unpack('>dd', packed)
  ahead = anchor - now  -- exact: both are whole microseconds
  if ahead + units * interval <= 0 then anchor, units, ahead = now, 0, 0 end
end
units = units + cost
local due = ahead + units * interval  -- the new tat, from now
local excess = due - tolerance
-- A few ulps of slack: units * T is rounded, and a caller at the rate must pass.
if excess > limit + (due + tolerance + limit) * 1e-15 then
  return -math.ceil(excess)
end
-- Milliseconds: the key is gone once the tat has passed.
redis.call('SET', KEYS[1], struct.pack('>dd', anchor, units), 'PX', math.ceil(due / 1000))
if excess <= 0 then return 0 end
return math.ceil(excess)
"""
