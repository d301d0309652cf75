-- wrk script for bench_contacts_api.py: POST /api/v1/contacts, a unique email per request.
--
--   wrk -t1 -c64 -d15s -s bench/create_contacts.lua http://127.0.0.1:PORT/api/v1/contacts \
--       -- TAG [API_KEY] [ACK_FILE_PREFIX]
--
-- Emails are TAG-THREAD-SEQ@bench.example, so every run (and warm-up) gets its own TAG.
-- With ACK_FILE_PREFIX, the email of every 201 answer is written to PREFIX-THREAD.txt, so the
-- caller can check that each acknowledged create is stored. done() prints one line:
-- BENCH_RESULT {json}.

local threads = {}
local next_id = 1

function setup(thread)
  thread:set("thread_id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  tag = args[1] or "run"
  local key = args[2] or ""
  local ack_prefix = args[3]
  seq = 0
  created = 0
  other = 0
  codes = ""
  other_codes = {}
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  if key ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. key
  end
  if ack_prefix and ack_prefix ~= "" then
    acks = io.open(ack_prefix .. "-" .. thread_id .. ".txt", "w")
  end
end

function request()
  seq = seq + 1
  local body = string.format(
    '{"email":"%s-%d-%d@bench.example",'
      .. '"attributes":{"FIRSTNAME":"Ada","LASTNAME":"Lovelace","AGE":%d}}',
    tag, thread_id, seq, seq % 90
  )
  return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
  if status == 201 then
    created = created + 1
    if acks then
      acks:write((body:match('"email":"([^"]+)"') or "?"), "\n")
      if created % 1000 == 0 then
        acks:flush()
      end
    end
  else
    other = other + 1
    other_codes[status] = (other_codes[status] or 0) + 1
    local parts = {}
    for code, n in pairs(other_codes) do
      table.insert(parts, code .. ":" .. n)
    end
    codes = table.concat(parts, ",")
  end
end

function done(summary, latency, requests)
  local created_all, other_all, sent_all, codes_all = 0, 0, 0, {}
  for _, thread in ipairs(threads) do
    created_all = created_all + thread:get("created")
    other_all = other_all + thread:get("other")
    sent_all = sent_all + thread:get("seq")
    local thread_codes = thread:get("codes")
    if thread_codes ~= "" then
      table.insert(codes_all, thread_codes)
    end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"duration_us":%d,"requests":%d,"sent":%d,"created":%d,"other":%d,'
      .. '"other_codes":"%s","errors_connect":%d,"errors_read":%d,"errors_write":%d,'
      .. '"errors_timeout":%d,"latency_mean_us":%.1f,"latency_p50_us":%d,'
      .. '"latency_p90_us":%d,"latency_p99_us":%d,"latency_max_us":%d}\n',
    summary.duration, summary.requests, sent_all, created_all, other_all,
    table.concat(codes_all, ","), e.connect, e.read, e.write, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max
  ))
end
