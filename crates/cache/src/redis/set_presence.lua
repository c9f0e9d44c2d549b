local node, ver, count, ttl, prefix = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], ARGV[5]
redis.call('SET', prefix .. node, '1', 'PX', ttl)
local mine, mine_ver, others = 0, -1, 0
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  local f, v = fields[i], fields[i + 1]
  local sep = string.find(v, ':', 1, true)
  local fver, fcount = -1, 0
  if sep then
    fver = tonumber(string.sub(v, 1, sep - 1)) or -1
    fcount = tonumber(string.sub(v, sep + 1)) or 0
  end
  if f == node then
    mine, mine_ver = fcount, fver
  elseif redis.call('EXISTS', prefix .. f) == 1 then
    if fcount > 0 then others = others + 1 end
  else
    redis.call('HDEL', KEYS[1], f)
  end
end
if ver < mine_ver then return -1 end
local was = 0
if others > 0 or mine > 0 then was = 1 end
local now = 0
if others > 0 or count > 0 then now = 1 end
redis.call('HSET', KEYS[1], node, ARGV[2] .. ':' .. ARGV[3])
redis.call('PEXPIRE', KEYS[1], ttl)
return was * 2 + now
