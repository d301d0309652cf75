-- wrk script for bench_tracking.py: GETs of pre-made tracking paths (opens or clicks), in a cycle.
--
--   wrk -t1 -c64 -d15s -s bench/tracking_replay.lua http://127.0.0.1:PORT -- PATHS_FILE THREADS
--
-- PATHS_FILE has one path a line (bench_tracking.py writes it); init() loads it before the clock
-- starts, thread k of THREADS keeping lines k, k+THREADS, ... Every request carries a desktop
-- browser's User-Agent. 200 and 302 answers count as acknowledged; done() prints one line:
-- BENCH_RESULT {json}.

local threads = {}
local next_id = 1

function setup(thread)
  thread:set("thread_id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  local file = args[1]
  local nthreads = tonumber(args[2] or "1")
  local tail = " HTTP/1.1\r\nHost: " .. wrk.host .. ":" .. tostring(wrk.port) .. "\r\n"
    .. "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n"
    .. "Accept: image/avif,image/webp,*/*\r\n\r\n"
  requests = {}
  local line_no = 0
  for line in io.lines(file) do
    if line_no % nthreads == thread_id - 1 then
      requests[#requests + 1] = "GET " .. line .. tail
    end
    line_no = line_no + 1
  end
  loaded = #requests
  if loaded == 0 then
    error("no paths for thread " .. thread_id .. " in " .. file)
  end
  index = 0
  acked = 0
  other = 0
  codes = ""
  code_counts = {}
end

function request()
  index = index + 1
  if index > loaded then
    index = 1
  end
  return requests[index]
end

function response(status, headers, body)
  if status == 200 or status == 302 then
    acked = acked + 1
  else
    other = other + 1
    code_counts[status] = (code_counts[status] or 0) + 1
    local parts = {}
    for code, n in pairs(code_counts) do
      table.insert(parts, code .. ":" .. n)
    end
    codes = table.concat(parts, ",")
  end
end

function done(summary, latency, requests)
  local acked_all, other_all, codes_all = 0, 0, {}
  for _, thread in ipairs(threads) do
    acked_all = acked_all + thread:get("acked")
    other_all = other_all + thread:get("other")
    local thread_codes = thread:get("codes")
    if thread_codes ~= "" then
      table.insert(codes_all, thread_codes)
    end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"duration_us":%d,"responses":%d,"acked":%d,"other":%d,"other_codes":"%s",'
      .. '"socket_errors":%d,"latency_p50_us":%d,"latency_p90_us":%d,"latency_p99_us":%d,'
      .. '"latency_max_us":%d}\n',
    summary.duration, summary.requests, acked_all, other_all, table.concat(codes_all, ","),
    e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max
  ))
end
