-- What every benchmark wrk script shares: each thread's id, a monotonic clock, paced send slots, and the one
-- machine-readable result line bench/load.py reads. Each script loads it with dofile() from its own
-- folder, in every Lua state wrk makes (its main one and each thread's).

-- wrk calls setup() in its main Lua state once per thread, before that thread's init(): the only
-- place a thread can be told apart (the ids and starting places need it). thread_id is a global.
local threads_seen = 0
function setup(thread)
    threads_seen = threads_seen + 1
    thread:set("thread_id", threads_seen)
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
function bench_pace(threads, rate)
    local interval_ms = 1000 * threads / rate
    local next_slot
    delay = function() -- wrk looks for a global delay() after init()
        local now = now_ms()
        if next_slot == nil or next_slot < now then
            next_slot = now
        end
        local wait = next_slot - now
        next_slot = next_slot + interval_ms
        return math.floor(wait)
    end
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
