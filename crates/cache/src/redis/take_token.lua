local rate, burst, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local h = redis.call('HMGET', KEYS[1], 't', 'l')
local tokens, last = tonumber(h[1]), tonumber(h[2])
if tokens == nil or last == nil then tokens, last = burst, now end
local elapsed = math.max(now - last, 0) / 1000
tokens = math.min(tokens + elapsed * rate, burst)
last = math.max(last, now)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
elseif rate == 0 then
  wait = -1
else
  wait = math.max(math.ceil((1 - tokens) / rate * 1000), 1)
end
local ttl = 86400000
if rate > 0 then ttl = math.ceil((burst - tokens) / rate * 1000) + 1000 end
redis.call('HSET', KEYS[1], 't', string.format('%.17g', tokens), 'l', string.format('%d', last))
redis.call('PEXPIRE', KEYS[1], ttl)
return wait
