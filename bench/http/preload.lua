-- wrk script: POST /key0 .. /key<KEYS-1> once each (run with -t1), then stop.
local keys = tonumber(os.getenv("KEYS") or "10000")
local body = '{"value":"' .. string.rep("x", 128) .. '"}'
local headers = { ["Content-Type"] = "application/json" }
local next_key = 0
local answered = 0

function request()
  local key = next_key % keys
  next_key = next_key + 1
  return wrk.format("POST", "/key" .. key, headers, body)
end

function response(status, headers, body)
  answered = answered + 1
  if status ~= 200 then
    io.write("preload: HTTP " .. status .. "\n")
    wrk.thread:stop()
  end
  if answered >= keys then
    wrk.thread:stop()
  end
end
