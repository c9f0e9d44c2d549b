local floor = tonumber(redis.call('GET', KEYS[2]) or '0')
if tonumber(ARGV[1]) > floor then
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
else
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
redis.call('DEL', KEYS[1])
return 1
