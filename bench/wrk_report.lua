-- bench/wrk_report.lua: make wrk print its results as one JSON line.
-- The line starts with "WRK_JSON " so bench/wrk.py can find it among wrk's
-- own human-readable output. Latencies are in microseconds.
-- No request()/response() hooks: those run Lua per request and would slow
-- the single wrk thread down; status errors come from wrk's own counter
-- (responses with status > 399).

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"min":%d,"mean":%.1f,"max":%d,"stdev":%.1f,' ..
    '"p50":%d,"p75":%d,"p90":%d,"p99":%d,"p999":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.max, latency.stdev,
    latency:percentile(50), latency:percentile(75), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9)))
end
