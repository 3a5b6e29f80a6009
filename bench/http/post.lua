-- wrk script: POST /key<N> with a 128-byte value, N random in [0, KEYS).
-- KEYS comes from the environment (default 10000).
local keys = tonumber(os.getenv("KEYS") or "10000")
local body = '{"value":"' .. string.rep("x", 128) .. '"}'
local headers = { ["Content-Type"] = "application/json" }

function setup(thread)
  thread:set("seed", math.random(1, 1000000))
end

function init(args)
  math.randomseed(seed or os.time())
end

function request()
  return wrk.format("POST", "/key" .. math.random(0, keys - 1), headers, body)
end

function done(summary, latency, requests)
  io.write(string.format("non-2xx or errors: %d status, %d read, %d write, %d timeout\n",
    summary.errors.status, summary.errors.read, summary.errors.write, summary.errors.timeout))
end
