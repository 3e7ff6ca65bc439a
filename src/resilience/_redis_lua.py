"""The Lua script behind ``RedisStorage``: every operation on a circuit is one call of it.

Running inside Redis makes each operation atomic: an admission, a batch of outcomes with
the transitions they cause, or an operator's order happens whole or not at all, whatever
other processes do at the same moment. Time comes from the server (``TIME``), in
microseconds, so every process reads one clock.

KEYS[1] is the circuit's state (a string of 28 packed doubles, 224 bytes), KEYS[2] its
window (a string of one byte per call for a count window; for a time window, a list of
its closed one-second buckets that held calls, 20 bytes each, the current bucket being
in the state). Nothing else is touched, so Redis Cluster can route the call by the keys'
shared hash tag. Every operation costs O(1) Redis work whatever the window and the idle
time (amortised for a time window: each bucket is listed once and dropped once).

ARGV: 1 operation (a: admit, r: record, f: force, s: stats), 2 TTL in ms ('' keeps the
stored one), 3 calls rejected from a cache, 4 generation, 5 outcomes, 6 stale outcomes,
7 the policy (admit, record) or the state to force (force), 8 for force: create ('1') or
leave an unknown circuit alone ('0'); for record: 'k' when this client set the keys'
TTLs under a second ago, so they may be kept (keys then expire between ttl - 1 s and ttl
after the last use; a time window's key up to a second later than the state's), 9 (tests
only, normally absent) the time in microseconds to use instead of the server's ``TIME``:
the seam through which tests/integration/test_redis_model.py drives a real server with a
fake clock. The policy
is one string of comma-separated fields (few arguments keep the client's encoding
cheap): c(onsecutive) or r(ate), threshold,
window n(calls) or t(ime), window size (calls or seconds), minimum calls, slow-call rate
('' for none), success threshold, half-open slots, and the recovery waits in microseconds,
separated by ';', for the 1st, 2nd, ... trip in a row (the last repeats).

A record served by the hot path (a CLOSED or METRICS_ONLY circuit that does not move)
replies with one integer, ``2 * generation`` plus 1 for METRICS_ONLY: nothing else in the
reply can differ there (no trial time, never left CLOSED, admitted, no shadow trip), and
an integer costs neither side any formatting. Every other reply is one comma-separated
string (cheaper for the client to read than an array):
state, generation, microseconds until a trial (-1 if not OPEN), the time it left
CLOSED (-1), now (0 when the time it left CLOSED is -1, since the server's clock is read
only when needed), admitted (1/0), whether a metrics-only trip was counted (1/0); the
stats operation adds failure count, success count, window calls (-1 for a consecutive
policy), minimum calls, slow calls, shadow trips, the fleet's successes, failures,
rejections and ignored calls, and the time of the last transition (while OPEN or
FORCED_OPEN the counts are those that opened the circuit, SPEC §8). A stats or
non-creating force on an unknown circuit replies nil.
"""

SCRIPT = r"""
local H, W = KEYS[1], KEYS[2]
local op = ARGV[1]
local LEASE = 30000000  -- a trial slot not given back within 30 s is presumed lost
local CLOSED, OPEN, HALF_OPEN, FORCED_OPEN, DISABLED, METRICS_ONLY = 1, 2, 3, 4, 5, 6
-- The circuit's 28 fields, packed as big-endian doubles in one string: one GET and one
-- SET per call, which costs Redis far less than a hash's many fields. Circuits written
-- by an older version hold the first 25 only.
local FORMAT = '>dddddddddddddddddddddddddddd'
local FORMAT_25 = '>ddddddddddddddddddddddddd'
local BUCKET = '>dI4I4I4'  -- a closed time-window bucket: its index, calls, failures, slow

local packed = redis.call('GET', H)

-- The hot path, written straight (no closure is made, no number is formatted): outcomes
-- reaching a CLOSED or METRICS_ONLY circuit that cause no transition and leave its
-- window where it is. It computes first and writes last, so whenever it meets anything
-- else (a trip, a window to reset or move on, an older layout) it has written nothing
-- and the general path below runs the operation from the start. Field for field, it
-- does what the general path would do.
if op == 'r' and packed and #packed == 224 then
  local st, gen, since, retry, trips, run, ok, trial, trial_at, chg, wkk, wks, calls, fails,
    slow, nxt, head, shadow, n_s, n_f, n_r, n_i, pol, mc, ttl, cc, cf, cs =
    struct.unpack(FORMAT, packed)
  local px = ARGV[2]  -- the TTL as the client wrote it (a number would be formatted)
  local fast = (st == CLOSED or st == METRICS_ONLY) and tonumber(px) ~= nil
  local written, fresh, prior = -1, false, nil  -- the count window's slot, key, old code
  if fast then
    n_r = n_r + (tonumber(ARGV[3]) or 0)
    local stale = ARGV[6]
    for i = 1, #stale do
      local c = string.byte(stale, i)  -- s S f F i
      if c == 115 or c == 83 then
        n_s = n_s + 1
      elseif c == 102 or c == 70 then
        n_f = n_f + 1
      else
        n_i = n_i + 1
      end
    end
    local outcomes = ARGV[5]
    local live = tonumber(ARGV[4]) == gen
    local rate = string.byte(ARGV[7], 1) == 114  -- 'r'ate, else 'c'onsecutive
    local threshold, wk, size, minimum, slow_rate  -- the policy, split when first needed
    for i = 1, #outcomes do
      local c = string.byte(outcomes, i)
      local failed = (c == 102 or c == 70) and 1 or 0
      if failed == 1 then
        n_f = n_f + 1
      elseif c == 105 then
        n_i = n_i + 1
      else
        n_s = n_s + 1
      end
      if live and c ~= 105 then
        if not rate then
          pol, mc = 1, 0
          if failed == 1 then
            run, ok = run + 1, 0
            if run >= tonumber(string.match(ARGV[7], '^c,([^,]*)')) then
              fast = false
              break
            end
          else
            run, ok = 0, ok + 1
          end
        else
          if not wk then
            threshold, wk, size, minimum, slow_rate =
              string.match(ARGV[7], '^r,([^,]*),(%a?),([^,]*),([^,]*),([^,]*),')
            threshold, size, minimum = tonumber(threshold), tonumber(size), tonumber(minimum)
            slow_rate = tonumber(slow_rate)
          end
          local slw = (c == 83 or c == 70) and 1 or 0
          if wk == 'n' then
            -- One outcome only: a later one could trip after its slot was planned.
            if wkk ~= 1 or wks ~= size or #outcomes > 1 then
              fast = false
              break
            end
            if calls >= size then
              -- One command reads the slot's old code and writes the new one (a byte
              -- past the end reads 0, as GETRANGE's '' counts as 0); a trip puts it back.
              prior = redis.call('BITFIELD', W, 'SET', 'u8', '#' .. nxt,
                48 + failed + 2 * slw)[1]
              local old = prior > 0 and prior - 48 or 0
              fails = fails - old % 2
              slow = slow - math.floor(old / 2)
            else
              fresh = calls == 0  -- the window's key is about to be made
              calls = calls + 1
            end
            written = nxt
            nxt = (nxt + 1) % size
          else
            if wkk ~= 3 or wks ~= size or head < 0 then
              fast = false
              break
            end
            local now = tonumber(ARGV[9])  -- a test's clock, or the server's
            if not now then
              local t = redis.call('TIME')
              now = t[1] * 1000000 + t[2]
            end
            -- Only within the current bucket (or a clock that stepped back).
            if math.floor(now / (size * 1000000 / math.ceil(size))) > head then
              fast = false
              break
            end
            cc, cf, cs = cc + 1, cf + failed, cs + slw
            calls = calls + 1
          end
          fails = fails + failed
          slow = slow + slw
          pol, mc = 2, minimum
          if calls >= mc and (fails / calls >= threshold
              or (slow_rate ~= nil and slow / calls >= slow_rate)) then
            fast = false
            if prior then redis.call('BITFIELD', W, 'SET', 'u8', '#' .. written, prior) end
            break
          end
        end
      end
    end
  end
  if fast then
    ttl = tonumber(px)
    -- ARGV[8] 'k': this client set the TTLs under a second ago, so they are kept
    -- (KEEPTTL), which costs Redis less than setting them again on every call.
    local keep = ARGV[8] == 'k'
    if written >= 0 and not prior then  -- (a full window's slot is written already)
      local c = string.byte(ARGV[5], 1)
      local code = ((c == 102 or c == 70) and 1 or 0) + ((c == 83 or c == 70) and 2 or 0)
      redis.call('SETRANGE', W, written, string.char(48 + code))
    end
    local data = struct.pack(FORMAT, st, gen, since, retry, trips, run, ok, trial, trial_at,
      chg, wkk, wks, calls, fails, slow, nxt, head, shadow, n_s, n_f, n_r, n_i, pol, mc, ttl,
      cc, cf, cs)
    if keep then
      if data ~= packed then redis.call('SET', H, data, 'KEEPTTL') end
    elseif data ~= packed then
      redis.call('SET', H, data, 'PX', px)
    else
      redis.call('PEXPIRE', H, px)
    end
    -- A time window's key needs nothing: each bucket change takes the general path.
    if wkk == 1 and (fresh or not keep) then redis.call('PEXPIRE', W, px) end
    -- The short reply (see the module docstring): an integer, which costs neither side
    -- any formatting; exact while 2 * gen < 2^53 (gen is a time in µs: until 2112).
    return 2 * gen + (st == METRICS_ONLY and 1 or 0)
  end
end

local NAMES = {'closed', 'open', 'half_open', 'forced_open', 'disabled', 'metrics_only'}

-- The server's clock, read once and only when needed (a closed circuit's outcome
-- needs no time): microseconds.
local now = nil
local function clock()
  if not now then
    now = tonumber(ARGV[9])  -- a test's clock (see the module docstring), or the server's
    if not now then
      local t = redis.call('TIME')
      now = t[1] * 1000000 + t[2]
    end
  end
  return now
end

-- since, retry and head are -1 when absent. wkk: 0 no window, 1 count window (a string:
-- one byte per call), 3 time window (a list of closed buckets, oldest first, plus the
-- current bucket in cc/cf/cs; 2 was an older layout, reset on sight). nxt: the count
-- window's next slot, or the time window's oldest listed bucket (0: none).
local st, gen, since, retry, trips, run, ok, trial, trial_at, chg, wkk, wks, calls, fails
local slow, nxt, head, shadow, n_s, n_f, n_r, n_i, pol, mc, ttl, cc, cf, cs
if packed then
  if #packed == 200 then
    st, gen, since, retry, trips, run, ok, trial, trial_at, chg, wkk, wks, calls, fails,
      slow, nxt, head, shadow, n_s, n_f, n_r, n_i, pol, mc, ttl = struct.unpack(FORMAT_25, packed)
    cc, cf, cs = 0, 0, 0
  else
    st, gen, since, retry, trips, run, ok, trial, trial_at, chg, wkk, wks, calls, fails,
      slow, nxt, head, shadow, n_s, n_f, n_r, n_i, pol, mc, ttl, cc, cf, cs =
      struct.unpack(FORMAT, packed)
  end
else
  if op == 's' or (op == 'f' and ARGV[8] == '0') then return false end
  st, gen, since, retry, trips, run, ok, trial, trial_at = CLOSED, clock(), -1, -1, 0, 0, 0, 0, 0
  chg, wkk, wks, calls, fails, slow, nxt, head, shadow = now, 0, 0, 0, 0, 0, 0, -1, 0
  n_s, n_f, n_r, n_i, pol, mc, ttl, cc, cf, cs = 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
  -- a circuit made anew (after a restart) never reuses a generation: gen is the time
end
ttl = tonumber(ARGV[2]) or (ttl > 0 and ttl) or 86400000
local shadow_flag = 0

local P = nil  -- the policy's fields, split when first needed (one match, nine captures)
local FIELD = '([^,]*),'
local POLICY = '^' .. string.rep(FIELD, 8) .. '(.*)$'
local function policy(i)
  if not P then P = {string.match(ARGV[7], POLICY)} end
  return P[i]
end

local function clear_window()
  calls, fails, slow, nxt, head, cc, cf, cs = 0, 0, 0, 0, -1, 0, 0, 0
  redis.call('DEL', W)
end

local function restart()
  gen = gen + 1
  run, ok, trial = 0, 0, 0
  clear_window()
end

local function recovery(n)
  local waits = {}
  for v in string.gmatch(policy(9) or '', '[^;]+') do waits[#waits + 1] = tonumber(v) end
  if #waits == 0 then return 30000000 end
  return waits[math.min(n, #waits)]
end

-- SPEC §8: while OPEN or FORCED_OPEN the circuit reports the counts that opened it. They
-- stay in the scalars (run, ok, or calls, fails, slow): only the window's storage goes, as
-- nothing is recorded until the circuit leaves, which restarts everything. From HALF_OPEN
-- they are the trial's (a failed trial, its successes before) and pol = 1 makes the stats
-- report run and ok with no rate. From OPEN to FORCED_OPEN they stay as they are.
local function hold(old)
  gen = gen + 1
  trial = 0
  if old == OPEN then return end
  if old == HALF_OPEN then
    run, pol = (st == OPEN) and 1 or 0, 1
    return
  end
  local c, f, s = calls, fails, slow
  clear_window()
  calls, fails, slow = c, f, s
end

local function to(new)
  if st == new then return false end
  local old = st
  st = new
  chg = clock()
  if new == OPEN or new == FORCED_OPEN then hold(old) else restart() end
  if new == OPEN or new == FORCED_OPEN or new == HALF_OPEN then
    if since < 0 then since = now end
    if new == OPEN then
      trips = trips + 1
      retry = now + recovery(trips)
    elseif new == FORCED_OPEN then
      retry = -1
    end
  else
    since, retry, trips = -1, -1, 0
  end
  return true
end

-- Move a time window to the current bucket. Buckets that have left the window are
-- dropped: all at once when even the newest has (whatever the idle time, O(1)), else
-- one listed bucket at a time, each pushed once and popped once (amortised O(1)).
local function advance(seconds)
  local n = math.ceil(seconds)
  local index = math.floor(clock() / (seconds * 1000000 / n))
  if head < 0 then
    head = index
    return
  end
  if index <= head then return end  -- the same bucket (or a clock that stepped back)
  local horizon = index - n  -- buckets at or before it have left the window
  if head <= horizon then
    clear_window()
  else
    if cc > 0 then
      redis.call('RPUSH', W, struct.pack(BUCKET, head, cc, cf, cs))
      if nxt <= 0 then nxt = head end
    end
    cc, cf, cs = 0, 0, 0
    while nxt > 0 and nxt <= horizon do
      local v = redis.call('LPOP', W)
      if not v then
        nxt = 0
      else
        local _, c, f, sl = struct.unpack(BUCKET, v)
        calls, fails, slow = calls - c, fails - f, slow - sl
        local first = redis.call('LINDEX', W, 0)
        nxt = first and (struct.unpack(BUCKET, first)) or 0
      end
    end
  end
  head = index
end

local function rate_record(failed, slw)
  local counted = policy(3) == 'n'
  local kind, size = counted and 1 or 3, tonumber(policy(4))
  if wkk ~= kind or wks ~= size then
    clear_window()
    wkk, wks = kind, size
  end
  if counted then
    local i = nxt
    if calls >= size then
      local old = (string.byte(redis.call('GETRANGE', W, i, i)) or 48) - 48
      fails = fails - old % 2
      slow = slow - math.floor(old / 2)
    else
      calls = calls + 1
    end
    redis.call('SETRANGE', W, i, string.char(48 + failed + 2 * slw))
    nxt = (i + 1) % size
  else
    advance(size)
    cc, cf, cs = cc + 1, cf + failed, cs + slw
    calls = calls + 1
  end
  fails = fails + failed
  slow = slow + slw
  pol, mc = 2, tonumber(policy(5))
  if calls < mc then return false end
  -- Divide rather than multiply, as the in-memory breaker does: 3 / 10 >= 0.3 holds.
  if fails / calls >= tonumber(policy(2)) then return true end
  local slow_rate = tonumber(policy(6))
  return slow_rate ~= nil and slow / calls >= slow_rate
end

local function consecutive_record(failed)
  pol, mc = 1, 0
  if failed == 1 then
    run, ok = run + 1, 0
    return run >= tonumber(policy(2))
  end
  run, ok = 0, ok + 1
  return false
end

local function trip()
  if st == METRICS_ONLY then
    shadow = shadow + 1
    shadow_flag = 1
    restart()
  else
    to(OPEN)
  end
end

local function total(c)
  if c == 's' or c == 'S' then
    n_s = n_s + 1
  elseif c == 'f' or c == 'F' then
    n_f = n_f + 1
  else
    n_i = n_i + 1
  end
end

if st == OPEN and retry >= 0 and clock() >= retry then to(HALF_OPEN) end

local admitted = 1
if op == 'a' then
  n_r = n_r + (tonumber(ARGV[3]) or 0)
  if st == HALF_OPEN then
    local slots = tonumber(policy(8))
    if trial >= slots and clock() - trial_at >= LEASE then trial = 0 end
    if trial < slots then
      trial = trial + 1
      trial_at = clock()
    else
      admitted = 0
    end
  elseif st == OPEN or st == FORCED_OPEN then
    admitted = 0
  end
  if admitted == 0 then n_r = n_r + 1 end
elseif op == 'r' then
  n_r = n_r + (tonumber(ARGV[3]) or 0)
  local stale = ARGV[6]
  for i = 1, #stale do total(string.sub(stale, i, i)) end
  local g = tonumber(ARGV[4])
  local outcomes = ARGV[5]
  for i = 1, #outcomes do
    local c = string.sub(outcomes, i, i)
    total(c)
    if g == gen and c ~= 'i' then
      local failed = (c == 'f' or c == 'F') and 1 or 0
      local slw = (c == 'S' or c == 'F') and 1 or 0
      if st == HALF_OPEN then
        trial = math.max(0, trial - 1)
        if failed == 1 then
          to(OPEN)
        else
          ok = ok + 1
          if ok >= tonumber(policy(7)) then to(CLOSED) end
        end
      elseif st == CLOSED or st == METRICS_ONLY then
        local trips_now
        if policy(1) == 'r' then
          trips_now = rate_record(failed, slw)
        else
          trips_now = consecutive_record(failed)
        end
        if trips_now then trip() end
      end
    elseif g == gen and st == HALF_OPEN then
      trial = math.max(0, trial - 1)  -- an ignored (cancelled) trial gives its slot back
    end
  end
elseif op == 'f' then
  local name = ARGV[7]
  local new = (name == 'closed' and CLOSED) or (name == 'forced_open' and FORCED_OPEN)
    or (name == 'disabled' and DISABLED) or (name == 'metrics_only' and METRICS_ONLY)
  if not new then
    return redis.error_reply('ERR resilience: cannot force state ' .. name)
  end
  -- The counts FORCED_OPEN holds are those of the window as it stands now.
  if new == FORCED_OPEN and wkk == 3 and (st == CLOSED or st == METRICS_ONLY) then
    advance(wks)
  end
  if not to(new) and new == CLOSED then restart() end
elseif op == 's' then
  if wkk == 3 and st ~= OPEN and st ~= FORCED_OPEN then advance(wks) end  -- held while open
end

local data = struct.pack(FORMAT, st, gen, since, retry, trips, run, ok, trial, trial_at, chg,
  wkk, wks, calls, fails, slow, nxt, head, shadow, n_s, n_f, n_r, n_i, pol, mc, ttl, cc, cf, cs)
if data ~= packed then
  redis.call('SET', H, data, 'PX', ttl)
else
  redis.call('PEXPIRE', H, ttl)
end
-- A time window's buckets outlive the state by a bucket (at most 1 s): the hot path
-- refreshes the state's TTL alone, within the bucket of the last call that came here.
if wkk == 3 then
  redis.call('PEXPIRE', W, ttl + 1000)
elseif wkk > 0 then
  redis.call('PEXPIRE', W, ttl)
end

-- The time is read for the reply only when it means something there (since is set).
local retry_in = -1
if st == OPEN and retry >= 0 then retry_in = math.max(0, retry - clock()) end
if since >= 0 then clock() end
local reply = string.format('%s,%.0f,%.0f,%.0f,%.0f,%d,%d', NAMES[st], gen, retry_in, since,
  now or 0, admitted, shadow_flag)
if op == 's' then
  local fc, sc, n = run, ok, -1
  if st == HALF_OPEN then
    fc, sc = 0, ok
  elseif pol == 2 then
    fc, sc, n = fails, calls - fails, calls
  end
  reply = reply .. string.format(',%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f', fc,
    sc, n, mc, slow, shadow, n_s, n_f, n_r, n_i, chg)
end
return reply
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
