-- wrk script: GET /key<N>?consistency=<CONSISTENCY>, N random in [0, KEYS)
-- (bench/http/get.lua with the read consistency chosen by the environment:
-- linearizable, lease or stale; preload the keys first).
local keys = tonumber(os.getenv("KEYS") or "100000")
local query = "?consistency=" .. (os.getenv("CONSISTENCY") or "stale")

function setup(thread)
  thread:set("seed", math.random(1, 1000000))
end

function init(args)
  math.randomseed(seed or os.time())
end

function request()
  return wrk.format("GET", "/key" .. math.random(0, keys - 1) .. query)
end

function done(summary, latency, requests)
  io.write(string.format("non-2xx or errors: %d status, %d read, %d write, %d timeout\n",
    summary.errors.status, summary.errors.read, summary.errors.write, summary.errors.timeout))
end
