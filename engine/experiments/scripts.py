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


# KEYS: assignments, stats, daily stats, days set, served versions[, dimensions].
# ARGV: user, epoch, variant, one value per covariate, served (``<variant>|<model>@<version>``), day,
# then optionally (experiments with custom metrics, or dimensions): k, k custom counter names, their k
# pre-exposure values (appended to the record, read by OBSERVE_CUSTOM), and the user's dimensions
# (``name=value`` joined by tabs; stored in the dimensions hash, read by breakdowns without a join).
# Returns 1 for a new exposure, 0 when the user is already exposed in this epoch.
EXPOSE = f"""
local rec = redis.call('HGET', KEYS[1], ARGV[1])
if rec and string.match(rec, '^([^|]*)') == ARGV[2] then return 0 end
local covs = {_lua_list(COVARIATES)}
local nc = #covs
local served, day = ARGV[4 + nc], ARGV[5 + nc]
local k = tonumber(ARGV[6 + nc] or '0')
local record = ARGV[2] .. '|' .. ARGV[3]
for i = 1, nc do record = record .. '|' .. ARGV[3 + i] end
for i = 1, k do record = record .. '|' .. ARGV[6 + nc + k + i] end
redis.call('HSET', KEYS[1], ARGV[1], record)
local p = ARGV[3] .. '|'
for _, key in ipairs({{KEYS[2], KEYS[3]}}) do
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
    local name, x = ARGV[6 + nc + i], tonumber(ARGV[6 + nc + k + i])
    if x ~= 0 then
      redis.call('HINCRBYFLOAT', key, p .. 'px:' .. name, string.format('%.17g', x))
      redis.call('HINCRBYFLOAT', key, p .. 'pxx:' .. name, string.format('%.17g', x * x))
      for j = i + 1, k do
        local y = tonumber(ARGV[6 + nc + k + j])
        if y ~= 0 then
          redis.call('HINCRBYFLOAT', key, p .. 'pp:' .. name .. '*' .. ARGV[6 + nc + j], string.format('%.17g', x * y))
        end
      end
    end
  end
end
local dims = ARGV[7 + nc + 2 * k]
if KEYS[6] and dims and dims ~= '' then redis.call('HSET', KEYS[6], ARGV[1], dims) end
redis.call('SADD', KEYS[4], day)
redis.call('HINCRBY', KEYS[5], served, 1)
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


# KEYS: assignments, unit counters, stats, daily stats, days set.
# ARGV: user, day, k, k custom counter names (the order EXPOSE appended their pre-values in), k deltas.
# Per counter c it keeps ``s:c`` ``ss:c``, the indicator ``si:c`` (units with c > 0) and its covariate
# product ``sxi:c``, the CUPED products ``sx:c@d`` (c times the pre-exposure value of counter d, for
# every d: a ratio's CUPED needs num·pre_den as well as num·pre_num), and ``x:c*d`` (c·d, c before d:
# a ratio's numerator-denominator product).  Only experiments that declare custom metrics call it.
OBSERVE_CUSTOM = f"""
local rec = redis.call('HGET', KEYS[1], ARGV[1])
if not rec then return 0 end
local parts = {{}}
for part in string.gmatch(rec, '[^|]+') do parts[#parts + 1] = part end
local variant = parts[2]
local unit = ARGV[1]
if parts[1] ~= '0' then unit = unit .. '~' .. parts[1] end
local k = tonumber(ARGV[3])
local names, pre, fields = {{}}, {{}}, {{}}
for i = 1, k do
  names[i] = ARGV[3 + i]
  pre[i] = tonumber(parts[2 + {len(COVARIATES)} + i]) or 0
  fields[i] = unit .. ':' .. names[i]
end
local raw = redis.call('HMGET', KEYS[2], unpack(fields))
local old, new, writes = {{}}, {{}}, {{}}
for i = 1, k do
  old[i] = tonumber(raw[i]) or 0
  new[i] = old[i] + tonumber(ARGV[3 + k + i])
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
for i = 1, k do
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
for _, f in ipairs(order) do
  local d = string.format('%.17g', inc[f])
  redis.call('HINCRBYFLOAT', KEYS[3], f, d)
  redis.call('HINCRBYFLOAT', KEYS[4], f, d)
end
redis.call('SADD', KEYS[5], ARGV[2])
return 1
"""
