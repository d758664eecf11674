-- wrk script for bench/run.sh's paced workloads: bench/wrk.lua (its path in
-- WRK_BASE_SCRIPT) plus a pause after each response before the connection sends
-- its next request, so that the offered load stays below what the proxy can
-- take. The pause is drawn from 0..2*WRK_DELAY_MS ms (mean WRK_DELAY_MS): a
-- fixed one would keep the connections in step, arriving as bursts. wrk starts
-- a request's latency when it is sent, so the pause is not counted in it.
dofile(os.getenv("WRK_BASE_SCRIPT"))

local pause = tonumber(os.getenv("WRK_DELAY_MS") or "")
if not pause or pause <= 0 then
   error("WRK_DELAY_MS must be a positive number of milliseconds")
end
pause = math.floor(pause)

delay = function()
   return math.random(0, 2 * pause)
end
