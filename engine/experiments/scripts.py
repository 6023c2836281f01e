"""The Lua scripts that keep an experiment's running statistics; each touches one slot.

Statistics live in one hash per (experiment, phase), fields ``<variant>|<statistic>``, and in one
hash per (experiment, phase, UTC day) and per UTC hour holding the increments made then.  Statistics:

``n``                        exposed units; ``n@<epoch>`` the same per bandit epoch
``px:<cov>`` ``pxx:<cov>``   sum and sum of squares of a pre-exposure covariate
``s:<c>`` ``ss:<c>``         sum and sum of squares of counter ``c`` over units
``si:<c>``                   sum of ``c · impressions`` (ratio metrics over impressions)
``sx:<c>``                   sum of ``c · covariate`` (CUPED)
``s:<ind>`` ``sx:<ind>``     an indicator (clicked, converted) and its covariate cross-product

When a unit's count moves from x to x + d, ``s += d`` and ``ss += (x + d)² - x²``; every other
cross-product moves the same way, so statistics stay exact without ever re-reading raw events.
"""

from __future__ import annotations

from engine.experiments.metrics import COUNTER_COVARIATE, COUNTERS, COVARIATES, INDICATORS


def _lua_list(values: tuple[str, ...] | list[str]) -> str:
    return "{" + ", ".join(f"'{v}'" for v in values) + "}"


HOURLY_TTL_SECONDS = 4 * 86_400  # hours chart runs younger than two days; days serve older ones
LIST_SAMPLE = 500  # most recent first-exposure lists kept per arm for the quality block
_BASE = 3 + len(COVARIATES)  # ARGV index of the last covariate

# KEYS: 1 assignments, 2 stats, 3 daily stats, 4 days set, 5 served versions, 6 hourly stats, 7 health,
#   8 crossed users, 9 quality counters, 10 the arm's list sample, 11 the phase's dimensions hash, and
#   12 (from phase 2 on; absent in phase 1) the previous phase's assignments.  Lua's KEYS can have no
#   hole, so the only optional key is the last one; every key is a real key of the experiment's slot.
# ARGV: 1 user, 2 epoch, 3 variant, then one value per covariate, then
#   _BASE+1 served (``<variant>|<model>@<version>``), +2 day, +3 time, +4 the served list
#   (``<user>|<item>,...``, '' when not known), +5 its flags ('c' cold start, 'f' fallback),
#   and optionally (experiments with custom metrics, or users with dimensions):
#   +6 k, k custom counter names, their k pre-exposure values (appended to the record, read by
#   OBSERVE_CUSTOM), and the user's dimensions (``name=value`` joined by tabs; stored in KEYS[11],
#   read by breakdowns without a join).
# Returns 1 for a new exposure, 0 when the user is already exposed in this epoch.  A user already
# exposed in this epoch under another arm is the health check's "served a second arm" (counted once
# per user); a new exposure under another arm than the previous phase's counts as carried over.
EXPOSE = f"""
local rec = redis.call('HGET', KEYS[1], ARGV[1])
local day, now = ARGV[{_BASE} + 2], ARGV[{_BASE} + 3]
redis.call('HSET', KEYS[7], 'last_exposure', now)
if rec then
  local epoch, arm = string.match(rec, '^([^|]*)|([^|]*)')
  if epoch == ARGV[2] then
    if arm ~= ARGV[3] and redis.call('HSETNX', KEYS[8], ARGV[1], arm .. '>' .. ARGV[3]) == 1 then
      redis.call('HINCRBY', KEYS[7], 'crossed', 1)
    end
    return 0
  end
elseif KEYS[12] then
  local prev = redis.call('HGET', KEYS[12], ARGV[1])
  if prev and string.match(prev, '^[^|]*|([^|]*)') ~= ARGV[3] then
    redis.call('HINCRBY', KEYS[7], 'carried_over', 1)
  end
end
local covs = {_lua_list(COVARIATES)}
local nc = #covs
local k = tonumber(ARGV[{_BASE} + 6] or '0')
local names, pre = {{}}, {{}}
for i = 1, k do names[i], pre[i] = ARGV[{_BASE} + 6 + i], tonumber(ARGV[{_BASE} + 6 + k + i]) end
local record = ARGV[2] .. '|' .. ARGV[3]
for i = 1, nc do record = record .. '|' .. ARGV[3 + i] end
for i = 1, k do record = record .. '|' .. ARGV[{_BASE} + 6 + k + i] end
redis.call('HSET', KEYS[1], ARGV[1], record)
local p = ARGV[3] .. '|'
for _, key in ipairs({{KEYS[2], KEYS[3], KEYS[6]}}) do
  redis.call('HINCRBY', key, p .. 'n', 1)
  redis.call('HINCRBY', key, p .. 'n@' .. ARGV[2], 1)
  for i = 1, nc do
    local x = tonumber(ARGV[3 + i])
    if x ~= 0 then
      redis.call('HINCRBYFLOAT', key, p .. 'px:' .. covs[i], string.format('%.17g', x))
      redis.call('HINCRBYFLOAT', key, p .. 'pxx:' .. covs[i], string.format('%.17g', x * x))
    end
  end
  for i = 1, k do
    local name, x = names[i], pre[i]
    if x ~= 0 then
      redis.call('HINCRBYFLOAT', key, p .. 'px:' .. name, string.format('%.17g', x))
      redis.call('HINCRBYFLOAT', key, p .. 'pxx:' .. name, string.format('%.17g', x * x))
      for j = i + 1, k do
        local y = pre[j]
        if y ~= 0 then
          redis.call('HINCRBYFLOAT', key, p .. 'pp:' .. name .. '*' .. names[j], string.format('%.17g', x * y))
        end
      end
    end
  end
end
redis.call('EXPIRE', KEYS[6], {HOURLY_TTL_SECONDS})
redis.call('SADD', KEYS[4], day)
redis.call('HINCRBY', KEYS[5], ARGV[{_BASE} + 1], 1)
local entry, flags = ARGV[{_BASE} + 4], ARGV[{_BASE} + 5]
if entry ~= '' then
  redis.call('HINCRBY', KEYS[9], p .. 'lists', 1)
  if string.find(flags, 'c', 1, true) then redis.call('HINCRBY', KEYS[9], p .. 'cold', 1) end
  if string.find(flags, 'f', 1, true) then redis.call('HINCRBY', KEYS[9], p .. 'fallback', 1) end
  redis.call('LPUSH', KEYS[10], entry)
  redis.call('LTRIM', KEYS[10], 0, {LIST_SAMPLE - 1})
end
local dims = ARGV[{_BASE} + 7 + 2 * k]
if dims and dims ~= '' then redis.call('HSET', KEYS[11], ARGV[1], dims) end
return 1
"""

_INDICATOR_INDEX = {name: COUNTERS.index(counter) + 1 for name, counter in INDICATORS.items()}
_COVARIATE_INDEX = [COVARIATES.index(COUNTER_COVARIATE[c]) + 1 for c in COUNTERS]

# Lua shared by OBSERVE and OBSERVE_CUSTOM (plain strings, inserted verbatim into the f-strings).
# The unit an exposure record names: the user, or ``user~epoch`` within a bandit epoch.
_UNIT_OF_RECORD = """local parts = {}
for part in string.gmatch(rec, '[^|]+') do parts[#parts + 1] = part end
local variant = parts[2]
local unit = ARGV[1]
if parts[1] ~= '0' then unit = unit .. '~' .. parts[1] end
"""
# Adds the deltas ``ARGV[first_delta + i]`` to the unit's counters ``fields[i]``, keeping ``old`` and
# ``new`` (returns 0 when nothing changes), then declares ``add``, which sums the increments of the
# variant's statistics that ``_FLUSH_INCREMENTS`` writes.
_UPDATE_UNIT = """local raw = redis.call('HMGET', KEYS[2], unpack(fields))
local old, new, writes = {}, {}, {}
for i = 1, #fields do
  old[i] = tonumber(raw[i]) or 0
  new[i] = old[i] + tonumber(ARGV[first_delta + i])
  if new[i] ~= old[i] then
    writes[#writes + 1] = fields[i]
    writes[#writes + 1] = string.format('%.17g', new[i])
  end
end
if #writes == 0 then return 0 end
redis.call('HSET', KEYS[2], unpack(writes))
local inc, order = {}, {}
local p = variant .. '|'
local function add(f, d)
  if d ~= 0 then
    if inc[f] == nil then order[#order + 1] = f; inc[f] = 0 end
    inc[f] = inc[f] + d
  end
end
"""
# The summed increments into the phase's, the day's and the hour's statistics; ARGV[2] is the day.
_FLUSH_INCREMENTS = f"""for _, f in ipairs(order) do
  local d = string.format('%.17g', inc[f])
  redis.call('HINCRBYFLOAT', KEYS[3], f, d)
  redis.call('HINCRBYFLOAT', KEYS[4], f, d)
  redis.call('HINCRBYFLOAT', KEYS[6], f, d)
end
redis.call('EXPIRE', KEYS[6], {HOURLY_TTL_SECONDS})
redis.call('SADD', KEYS[5], ARGV[2])
"""

# KEYS: assignments, unit counters, stats, daily stats, days set, hourly stats, health.
# ARGV: user, day, one delta per counter (in COUNTERS order), time of the latest event.
# Returns 1 when counted, 0 when the user is not exposed in this phase (the event is ignored, and
# counted as ``unexposed`` for the health check).
OBSERVE = f"""
local rec = redis.call('HGET', KEYS[1], ARGV[1])
if not rec then
  redis.call('HINCRBY', KEYS[7], 'unexposed', 1)
  return 0
end
{_UNIT_OF_RECORD}local names = {_lua_list(list(COUNTERS))}
local cov_of = {{{", ".join(str(i) for i in _COVARIATE_INDEX)}}}
local fields = {{}}
for i = 1, #names do fields[i] = unit .. ':' .. names[i] end
local first_delta = 2
{_UPDATE_UNIT}for i = 1, #names do
  local x = tonumber(parts[2 + cov_of[i]]) or 0
  add(p .. 's:' .. names[i], new[i] - old[i])
  add(p .. 'ss:' .. names[i], new[i] * new[i] - old[i] * old[i])
  add(p .. 'si:' .. names[i], new[i] * new[1] - old[i] * old[1])
  add(p .. 'sx:' .. names[i], (new[i] - old[i]) * x)
end
local indicators = {{{", ".join(f"{{'{n}', {i}}}" for n, i in _INDICATOR_INDEX.items())}}}
for _, ind in ipairs(indicators) do
  local i = ind[2]
  if old[i] <= 0 and new[i] > 0 then
    add(p .. 's:' .. ind[1], 1)
    add(p .. 'sx:' .. ind[1], tonumber(parts[2 + cov_of[i]]) or 0)
  end
end
{_FLUSH_INCREMENTS}local now = ARGV[3 + #names]
redis.call('HINCRBY', KEYS[7], 'observed', 1)
local last = tonumber(redis.call('HGET', KEYS[7], 'last_event')) or 0
if tonumber(now) > last then redis.call('HSET', KEYS[7], 'last_event', now) end
return 1
"""


# KEYS: OBSERVE's: assignments, unit counters, stats, daily stats, days set, hourly stats, health (the
# health counters are OBSERVE's alone: not touched here, so an event is counted once).
# ARGV: user, day, k, k custom counter names (the order EXPOSE appended their pre-values in), k deltas.
# Per counter c it keeps ``s:c`` ``ss:c``, the indicator ``si:c`` (units with c > 0) and its covariate
# product ``sxi:c``, the CUPED products ``sx:c@d`` (c times the pre-exposure value of counter d, for
# every d: a ratio's CUPED needs num·pre_den as well as num·pre_num), and ``x:c*d`` (c·d, c before d:
# a ratio's numerator-denominator product).  Only experiments that declare custom metrics call it.
OBSERVE_CUSTOM = f"""
local rec = redis.call('HGET', KEYS[1], ARGV[1])
if not rec then return 0 end
{_UNIT_OF_RECORD}local k = tonumber(ARGV[3])
local names, pre, fields = {{}}, {{}}, {{}}
for i = 1, k do
  names[i] = ARGV[3 + i]
  pre[i] = tonumber(parts[2 + {len(COVARIATES)} + i]) or 0
  fields[i] = unit .. ':' .. names[i]
end
local first_delta = 3 + k
{_UPDATE_UNIT}for i = 1, k do
  local d = new[i] - old[i]
  if d ~= 0 then
    add(p .. 's:' .. names[i], d)
    add(p .. 'ss:' .. names[i], new[i] * new[i] - old[i] * old[i])
    for j = 1, k do add(p .. 'sx:' .. names[i] .. '@' .. names[j], d * pre[j]) end
    for j = i + 1, k do add(p .. 'x:' .. names[i] .. '*' .. names[j], new[i] * new[j] - old[i] * old[j]) end
    for j = 1, i - 1 do
      if new[j] == old[j] then add(p .. 'x:' .. names[j] .. '*' .. names[i], old[j] * d) end
    end
    if old[i] <= 0 and new[i] > 0 then
      add(p .. 'si:' .. names[i], 1)
      add(p .. 'sxi:' .. names[i], pre[i])
    end
  end
end
{_FLUSH_INCREMENTS}return 1
"""
