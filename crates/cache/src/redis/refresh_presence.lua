local ttl = ARGV[1]
for i, key in ipairs(KEYS) do
  local node, ver, count = ARGV[3 * i - 1], ARGV[3 * i], ARGV[3 * i + 1]
  local v = redis.call('HGET', key, node)
  local cur = -1
  if v then
    local sep = string.find(v, ':', 1, true)
    if sep then cur = tonumber(string.sub(v, 1, sep - 1)) or -1 end
  end
  if tonumber(ver) >= cur then
    if tonumber(ver) > cur then redis.call('HSET', key, node, ver .. ':' .. count) end
    redis.call('PEXPIRE', key, ttl)
  end
end
return 0
