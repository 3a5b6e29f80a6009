-- wrk script for etcd's JSON gateway (v3 API), keys "key<N>" with N random in
-- [0, KEYS), 128-byte values: the same keys and values as bench/http/*.lua.
-- ETCD_OP (environment) picks the request:
--   put           POST /v3/kv/put   {"key":b64,"value":b64}
--   range         POST /v3/kv/range {"key":b64}                      (linearizable)
--   serializable  POST /v3/kv/range {"key":b64,"serializable":true}  (local read)
--   preload       put key0 .. key<KEYS-1> in order (run with -t1), then stop
local keys = tonumber(os.getenv("KEYS") or "100000")
local op = os.getenv("ETCD_OP") or "range"
local headers = { ["Content-Type"] = "application/json" }

local b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function b64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local c1 = math.floor(n / 262144) % 64
    local c2 = math.floor(n / 4096) % 64
    local c3 = math.floor(n / 64) % 64
    local c4 = n % 64
    out[#out + 1] = b64chars:sub(c1 + 1, c1 + 1) .. b64chars:sub(c2 + 1, c2 + 1) ..
      (b and b64chars:sub(c3 + 1, c3 + 1) or "=") .. (c and b64chars:sub(c4 + 1, c4 + 1) or "=")
  end
  return table.concat(out)
end

local value64 = b64(string.rep("x", 128))
local key64 = {}   -- "key<N>" in base64, encoded on first use
local function key(n)
  local k = key64[n]
  if not k then
    k = b64("key" .. n)
    key64[n] = k
  end
  return k
end

local function body(n)
  if op == "put" or op == "preload" then
    return '{"key":"' .. key(n) .. '","value":"' .. value64 .. '"}'
  elseif op == "serializable" then
    return '{"key":"' .. key(n) .. '","serializable":true}'
  else
    return '{"key":"' .. key(n) .. '"}'
  end
end

local path = (op == "put" or op == "preload") and "/v3/kv/put" or "/v3/kv/range"

function setup(thread)
  thread:set("seed", math.random(1, 1000000))
end

function init(args)
  math.randomseed(seed or os.time())
end

local next_key = 0
local answered = 0

function request()
  local n
  if op == "preload" then
    n = next_key % keys
    next_key = next_key + 1
  else
    n = math.random(0, keys - 1)
  end
  return wrk.format("POST", path, headers, body(n))
end

if op == "preload" then
  -- Stop some way past KEYS answers, so that the last keys' requests, in
  -- flight on other connections, are answered too (run.sh checks the count).
  function response(status, headers, body)
    answered = answered + 1
    if status ~= 200 then
      io.write("preload: HTTP " .. status .. " " .. body .. "\n")
      wrk.thread:stop()
    end
    if answered >= keys + 256 then
      wrk.thread:stop()
    end
  end
end

function done(summary, latency, requests)
  io.write(string.format("non-2xx or errors: %d status, %d read, %d write, %d timeout\n",
    summary.errors.status, summary.errors.read, summary.errors.write, summary.errors.timeout))
end
