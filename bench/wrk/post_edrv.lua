-- POSTs eDRV session.updated deliveries, each with a unique envelope `_id` (Chargeline dedupes on it).
--
-- Usage: wrk ... -s post_edrv.lua <url> -- <template file> <run number> [<threads> <total req/s>]
-- The template (written by bench/payload.py) is the compact fixture with {{event_id}} and
-- {{session_id}} marks. With a rate, requests are paced (see `paced_delay`); without one the script
-- defines no delay() at all, so wrk runs its plain closed loop with no timer in the way.

local SESSIONS = 300              -- keep in step with bench/payload.py
local SESSION_ID_PREFIX = "6601bb"

-- wrk calls setup() in its main Lua state once per thread, before that thread's init(): the only
-- place a thread can be told apart, which the ids need to stay unique across threads.
local threads_seen = 0
function setup(thread)
    threads_seen = threads_seen + 1
    thread:set("thread_id", threads_seen)
end

local prefix, middle, suffix, run_hex
local counter = 0
local headers = { ["Content-Type"] = "application/json" }

local function read_template(path)
    local file = assert(io.open(path, "rb"))
    local text = file:read("*a")
    file:close()
    local a, b = text:find("{{event_id}}", 1, true)
    local c, d = text:find("{{session_id}}", 1, true)
    assert(a and c and a < c, "template must hold {{event_id}} before {{session_id}}")
    return text:sub(1, a - 1), text:sub(b + 1, c - 1), text:sub(d + 1)
end

-- wrk has no clock for Lua; LuaJIT's ffi reaches clock_gettime(CLOCK_MONOTONIC) directly.
local ffi = require("ffi")
ffi.cdef [[
    typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
    int clock_gettime(int clock_id, bench_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local timespec = ffi.new("bench_timespec")
local function now_ms()
    ffi.C.clock_gettime(CLOCK_MONOTONIC, timespec)
    return tonumber(timespec.tv_sec) * 1000 + tonumber(timespec.tv_nsec) / 1e6
end

-- delay() is called per request but is shared by all of this thread's connections (wrk does not say
-- which connection asks), so pacing hands out send slots on one per-thread schedule: the thread's
-- connections together send at rate/threads, i.e. each of them at rate/connections on average.
-- A slot already in the past is not caught up on, so a stalled server is not hit with a burst later.
local interval_ms, next_slot
local function paced_delay()
    local now = now_ms()
    if next_slot == nil or next_slot < now then
        next_slot = now
    end
    local wait = next_slot - now
    next_slot = next_slot + interval_ms
    return math.floor(wait)
end

function init(args)
    prefix, middle, suffix = read_template(args[1])
    run_hex = string.format("%08x", tonumber(args[2]))
    if args[4] ~= nil then
        interval_ms = 1000 * tonumber(args[3]) / tonumber(args[4])
        delay = paced_delay -- wrk looks for a global delay() after init()
    end
end

function request()
    counter = counter + 1
    local event_id = run_hex .. string.format("%04x%012x", thread_id, counter)
    local session_id = SESSION_ID_PREFIX .. string.format("%018x", (thread_id * 97 + counter) % SESSIONS)
    return wrk.format("POST", nil, headers, prefix .. event_id .. middle .. session_id .. suffix)
end

-- One machine-readable line for bench/load.py; wrk's own text report stays human-only.
function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        'BENCH_RESULT {"duration_us":%d,"requests":%d,"errors":{"connect":%d,"read":%d,"write":%d,' ..
        '"status":%d,"timeout":%d},"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
        summary.duration, summary.requests, e.connect, e.read, e.write, e.status, e.timeout,
        latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean
    ))
end
