"""The two Lua scripts that keep an experiment's running statistics; each touches one slot.

Statistics live in one hash per (experiment, phase), fields ``<variant>|<statistic>``, and in one
hash per (experiment, phase, UTC day) holding the increments made that day.  Statistics:

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


# KEYS: assignments, stats, daily stats, days set, served versions.
# ARGV: user, epoch, variant, one value per covariate, served (``<variant>|<model>@<version>``), day.
# Returns 1 for a new exposure, 0 when the user is already exposed in this epoch.
EXPOSE = f"""
local rec = redis.call('HGET', KEYS[1], ARGV[1])
if rec and string.match(rec, '^([^|]*)') == ARGV[2] then return 0 end
local covs = {_lua_list(COVARIATES)}
local record = ARGV[2] .. '|' .. ARGV[3]
for i = 1, #covs do record = record .. '|' .. ARGV[3 + i] end
redis.call('HSET', KEYS[1], ARGV[1], record)
local p = ARGV[3] .. '|'
for _, key in ipairs({{KEYS[2], KEYS[3]}}) do
  redis.call('HINCRBY', key, p .. 'n', 1)
  redis.call('HINCRBY', key, p .. 'n@' .. ARGV[2], 1)
  for i = 1, #covs do
    local x = tonumber(ARGV[3 + i])
    if x ~= 0 then
      redis.call('HINCRBYFLOAT', key, p .. 'px:' .. covs[i], string.format('%.17g', x))
      redis.call('HINCRBYFLOAT', key, p .. 'pxx:' .. covs[i], string.format('%.17g', x * x))
    end
  end
end
redis.call('SADD', KEYS[4], ARGV[#ARGV])
redis.call('HINCRBY', KEYS[5], ARGV[#ARGV - 1], 1)
return 1
"""

_INDICATOR_INDEX = {name: COUNTERS.index(counter) + 1 for name, counter in INDICATORS.items()}
_COVARIATE_INDEX = [COVARIATES.index(COUNTER_COVARIATE[c]) + 1 for c in COUNTERS]

# KEYS: assignments, unit counters, stats, daily stats, days set.
# ARGV: user, day, one delta per counter (in COUNTERS order).
# Returns 1 when counted, 0 when the user is not exposed in this phase (the event is ignored).
OBSERVE = f"""
local rec = redis.call('HGET', KEYS[1], ARGV[1])
if not rec then return 0 end
local parts = {{}}
for part in string.gmatch(rec, '[^|]+') do parts[#parts + 1] = part end
local epoch, variant = parts[1], parts[2]
local unit = ARGV[1]
if epoch ~= '0' then unit = unit .. '~' .. epoch end
local names = {_lua_list(list(COUNTERS))}
local cov_of = {{{", ".join(str(i) for i in _COVARIATE_INDEX)}}}
local fields = {{}}
for i = 1, #names do fields[i] = unit .. ':' .. names[i] end
local raw = redis.call('HMGET', KEYS[2], unpack(fields))
local old, new = {{}}, {{}}
local writes = {{}}
for i = 1, #names do
  old[i] = tonumber(raw[i]) or 0
  new[i] = old[i] + tonumber(ARGV[2 + i])
  if new[i] ~= old[i] then
    writes[#writes + 1] = fields[i]
    writes[#writes + 1] = string.format('%.17g', new[i])
  end
end
if #writes == 0 then return 0 end
redis.call('HSET', KEYS[2], unpack(writes))
local inc, order = {{}}, {{}}
local p = variant .. '|'
local function add(f, d)
  if d ~= 0 then
    if inc[f] == nil then order[#order + 1] = f; inc[f] = 0 end
    inc[f] = inc[f] + d
  end
end
for i = 1, #names do
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
for _, f in ipairs(order) do
  local d = string.format('%.17g', inc[f])
  redis.call('HINCRBYFLOAT', KEYS[3], f, d)
  redis.call('HINCRBYFLOAT', KEYS[4], f, d)
end
redis.call('SADD', KEYS[5], ARGV[2])
return 1
"""
