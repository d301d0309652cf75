-- wrk script for bench_inbound.py: replays pre-signed Stripe webhook requests, in a cycle.
--
--   wrk -t1 -c64 -d15s -s bench/inbound_replay.lua http://127.0.0.1:PORT \
--       -- REQUESTS_FILE PATH THREADS [ACK_FILE_PREFIX]
--
-- REQUESTS_FILE has one request a line: "<Stripe-Signature>\t<X-Signature>\t<body>"
-- (bench/inbound_requests.py writes it). init() loads it before the clock starts; thread k of
-- THREADS keeps lines k, k+THREADS, k+2*THREADS, ... so no two threads send the same request.
-- Every request goes to PATH with the same headers. With ACK_FILE_PREFIX, the request_id of
-- every 202 answer is written to PREFIX-THREAD.txt, so the caller can check that each
-- acknowledged request was processed. done() prints one line: BENCH_RESULT {json}.

local threads = {}
local next_id = 1

function setup(thread)
  thread:set("thread_id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  local file, path = args[1], args[2]
  local nthreads = tonumber(args[3] or "1")
  local ack_prefix = args[4]
  local head = "POST " .. path .. " HTTP/1.1\r\n"
    .. "Host: " .. wrk.host .. ":" .. tostring(wrk.port) .. "\r\n"
    .. "User-Agent: Stripe/1.0 (+https://stripe.com/docs/webhooks)\r\n"
    .. "Content-Type: application/json; charset=utf-8\r\n"
  requests = {}
  local line_no = 0
  for line in io.lines(file) do
    if line_no % nthreads == thread_id - 1 then
      local stripe, xsig, body = line:match("^([^\t]*)\t([^\t]*)\t(.*)$")
      requests[#requests + 1] = head
        .. "Stripe-Signature: " .. stripe .. "\r\n"
        .. "X-Signature: " .. xsig .. "\r\n"
        .. "Content-Length: " .. #body .. "\r\n\r\n"
        .. body
    end
    line_no = line_no + 1
  end
  loaded = #requests
  if loaded == 0 then
    error("no requests for thread " .. thread_id .. " in " .. file)
  end
  index = 0
  sent = 0
  wraps = 0
  ok = 0
  accepted = 0
  other = 0
  codes = ""
  code_counts = {}
  if ack_prefix and ack_prefix ~= "" then
    acks = io.open(ack_prefix .. "-" .. thread_id .. ".txt", "w")
  end
end

function request()
  index = index + 1
  if index > loaded then
    index = 1
    wraps = wraps + 1
  end
  sent = sent + 1
  return requests[index]
end

function response(status, headers, body)
  if status == 202 then
    accepted = accepted + 1
    if acks then
      acks:write((body:match('"request_id":(%d+)') or "?"), "\n")
      if accepted % 1000 == 0 then
        acks:flush()
      end
    end
  elseif status == 200 then
    ok = ok + 1
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
  local totals = {sent = 0, loaded = 0, wraps = 0, ok = 0, accepted = 0, other = 0}
  local codes_all = {}
  for _, thread in ipairs(threads) do
    for name, _ in pairs(totals) do
      totals[name] = totals[name] + thread:get(name)
    end
    local thread_codes = thread:get("codes")
    if thread_codes ~= "" then
      table.insert(codes_all, thread_codes)
    end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"duration_us":%d,"responses":%d,"sent":%d,"loaded":%d,"wraps":%d,'
      .. '"ok_200":%d,"accepted_202":%d,"other":%d,"other_codes":"%s",'
      .. '"errors_connect":%d,"errors_read":%d,"errors_write":%d,"errors_timeout":%d,'
      .. '"errors_status":%d,"latency_mean_us":%.1f,"latency_p50_us":%d,'
      .. '"latency_p90_us":%d,"latency_p99_us":%d,"latency_max_us":%d}\n',
    summary.duration, summary.requests, totals.sent, totals.loaded, totals.wraps,
    totals.ok, totals.accepted, totals.other, table.concat(codes_all, ","),
    e.connect, e.read, e.write, e.timeout, e.status,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max
  ))
end
