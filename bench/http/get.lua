-- wrk script: GET /key<N>, N random in [0, KEYS) (preload them first).
local keys = tonumber(os.getenv("KEYS") or "10000")

function setup(thread)
  thread:set("seed", math.random(1, 1000000))
end

function init(args)
  math.randomseed(seed or os.time())
end

function request()
  return wrk.format("GET", "/key" .. math.random(0, keys - 1))
end

function done(summary, latency, requests)
  io.write(string.format("non-2xx or errors: %d status, %d read, %d write, %d timeout\n",
    summary.errors.status, summary.errors.read, summary.errors.write, summary.errors.timeout))
end
