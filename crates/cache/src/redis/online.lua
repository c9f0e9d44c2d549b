local alive, out = {}, {}
for i, key in ipairs(KEYS) do
  local on = 0
  local fields = redis.call('HGETALL', key)
  for j = 1, #fields, 2 do
    local v = fields[j + 1]
    local sep = string.find(v, ':', 1, true)
    local count = 0
    if sep then count = tonumber(string.sub(v, sep + 1)) or 0 end
    if count > 0 then
      local f = fields[j]
      if alive[f] == nil then alive[f] = redis.call('EXISTS', ARGV[1] .. f) == 1 end
      if alive[f] then
        on = 1
        break
      end
    end
  end
  out[i] = on
end
return out
