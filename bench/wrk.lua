-- wrk script for bench/run.sh.
-- WRK_BODY_BYTES=N turns every request into a POST with an N-byte body.
-- done() prints one machine-readable line that run.sh parses (latencies in us).
local n = tonumber(os.getenv("WRK_BODY_BYTES") or "")
if n and n > 0 then
   wrk.method = "POST"
   wrk.body = string.rep("x", n)
   wrk.headers["Content-Type"] = "application/octet-stream"
end

done = function(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "BENCH requests=%d duration_us=%d bytes=%d connect=%d read=%d write=%d status=%d timeout=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d\n",
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
