-- wrk script for scripts/bench/run: replays pre-signed requests from a file written by
-- bench.py sign-get / sign-put (one a line: target TAB x-amz-date TAB authorization TAB body).
--
-- Environment: BENCH_REQUESTS (the file), BENCH_THREADS (wrk's -t), BENCH_ERRORS=1 to
-- record the AWS error type of non-200 answers. With one request in the file wrk sends it
-- as a static request (no Lua per request); otherwise each thread cycles through its own
-- share (line i goes to thread i mod threads), so no two threads send the same request.
-- done() prints one "BENCH ..." line that run parses.

local path = os.getenv("BENCH_REQUESTS")
local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")

local function fields(line)
  local target, date, auth, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
  return {
    ["Content-Type"] = "application/x-amz-json-1.1",
    ["X-Amz-Target"] = target,
    ["X-Amz-Date"] = date,
    ["Authorization"] = auth,
  }, body
end

local lines = 0
for _ in io.lines(path) do lines = lines + 1 end

wrk.method = "POST"
if lines == 1 then
  for line in io.lines(path) do wrk.headers, wrk.body = fields(line) end
else
  local reqs, n, i = {}, 0, 0
  function init(args)
    local k = 0
    for line in io.lines(path) do
      if k % nthreads == id then
        local headers, body = fields(line)
        n = n + 1
        reqs[n] = wrk.format("POST", "/", headers, body)
      end
      k = k + 1
    end
  end
  function request()
    i = i + 1
    if i > n then i = 1; wrapped = (wrapped or 0) + 1 end
    return reqs[i]
  end
end

errors, errtypes = 0, ""
if os.getenv("BENCH_ERRORS") == "1" then
  local seen = {}
  function response(status, headers, body)
    if status ~= 200 then
      errors = errors + 1
      local t = body:match('"__type"%s*:%s*"([^"]*)"') or ("HTTP " .. status)
      if not seen[t] then seen[t] = true; errtypes = errtypes .. t .. ";" end
    end
  end
end

local threads = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  local types, wraps = {}, 0
  for _, t in ipairs(threads) do
    for ty in (t:get("errtypes") or ""):gmatch("[^;]+") do types[ty] = true end
    wraps = wraps + (t:get("wrapped") or 0)
  end
  local list = {}
  for ty in pairs(types) do table.insert(list, ty) end
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d p50_us=%d p99_us=%d non200=%d socket_errors=%d wrapped=%d types=%s\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout, wraps, table.concat(list, ",")))
end
