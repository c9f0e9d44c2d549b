local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if #top == 0 then return {'0'} end
local limit = tonumber(ARGV[3])
local out
if ARGV[1] == 'after' then
  out = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[2], '+inf', 'WITHSCORES', 'LIMIT', 0, limit)
elseif ARGV[1] == 'before' then
  out = redis.call('ZREVRANGEBYSCORE', KEYS[1], '(' .. ARGV[2], '-inf', 'WITHSCORES', 'LIMIT', 0, limit)
else
  out = redis.call('ZREVRANGE', KEYS[1], 0, limit - 1, 'WITHSCORES')
end
table.insert(out, 1, top[2])
return out
