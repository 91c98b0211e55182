-- wrk script for bench/load.py: POSTs JSON bodies read from a file, prints the result as JSON.
--
--   DATATORAG_LOAD_KEY=<api key> wrk -t2 -c32 -d15s --timeout 30s -s bench/load_wrk.lua \
--       http://127.0.0.1:8000/v1/search -- <bodies file> <unique|repeated> <salt> [think ms]
--
-- The bodies file holds one JSON body per line. "repeated" sends the first line on every
-- request (the query API's caches answer). "unique" rotates through the lines and replaces the
-- marker @@PAD@@ in each with trailing whitespace that encodes a number unique to the request:
-- the tokenizer and the keyword index ignore whitespace, so every request costs exactly what its
-- question costs, but no cache keyed on the query text can answer it.
-- With a think time, each connection waits that long (+-50 %, random) between a response and
-- its next request, like a person reading the answer; without, it sends at once (saturation).
-- The key comes from the environment, not the command line, so `ps` does not show it.

local threads = {}
local counter = 0

function setup(thread)
   thread:set("index", #threads)
   table.insert(threads, thread)
end

function init(args)
   bodies = {}
   for line in io.lines(args[1]) do
      if #line > 0 then
         table.insert(bodies, line)
      end
   end
   if #bodies == 0 then
      error("no request bodies in " .. args[1])
   end
   mode = args[2] or "unique"
   salt = tonumber(args[3] or "0")
   think = tonumber(args[4] or "0")
   index = index or 0 -- thread:set() in setup() made it a global of this thread's state
   math.randomseed(salt * 16 + index)
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/json"
   wrk.headers["X-API-Key"] = os.getenv("DATATORAG_LOAD_KEY") or ""
   counter = 0
end

-- " " for a 0 bit and "\t" (escaped for JSON) for a 1 bit, least significant first.
local function whitespace(n)
   local out = { " " }
   while n > 0 do
      if n % 2 == 1 then
         table.insert(out, "\\t")
      else
         table.insert(out, " ")
      end
      n = math.floor(n / 2)
   end
   return table.concat(out)
end

function request()
   counter = counter + 1
   if mode == "repeated" then
      return wrk.format(nil, nil, nil, bodies[1])
   end
   -- Threads start at different questions so they do not ask the same one at the same time.
   local line = bodies[((counter + index * 7) % #bodies) + 1]
   -- Unique across threads (16 at most) and across runs of one benchmark (one salt per run).
   local n = salt * 16777216 + counter * 16 + index
   return wrk.format(nil, nil, nil, (line:gsub("@@PAD@@", whitespace(n))))
end

function delay()
   if think <= 0 then
      return 0
   end
   return think * (0.5 + math.random())
end

function done(summary, latency, requests)
   local e = summary.errors
   local out = string.format(
      '{"requests": %d, "duration_us": %d, "bytes": %d, '
         .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
         .. '"latency_us": {"mean": %.1f, "stdev": %.1f, "max": %d, '
         .. '"p50": %d, "p90": %d, "p95": %d, "p99": %d, "p999": %d}}',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.mean, latency.stdev, latency.max,
      latency:percentile(50), latency:percentile(90), latency:percentile(95),
      latency:percentile(99), latency:percentile(99.9)
   )
   io.write("WRK_JSON " .. out .. "\n")
end
