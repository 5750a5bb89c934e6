-- POSTs eDRV session.updated deliveries, each with a unique envelope `_id` (Chargeline dedupes on it).
--
-- Usage: wrk ... -s post_edrv.lua <url> -- <template file> <run number> [<threads> <total req/s>]
-- The template (written by bench/payload.py) is the compact fixture with {{event_id}} and
-- {{session_id}} marks. With a rate, requests are paced (see `bench_pace` in summary.lua); without one
-- the script defines no delay() at all, so wrk runs its plain closed loop with no timer in the way.

local SESSIONS = 300              -- keep in step with bench/payload.py
local SESSION_ID_PREFIX = "6601bb"

-- The clock, pacing and the result line are shared with the other scripts; loaded from beside this one.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "summary.lua")

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

function init(args)
    prefix, middle, suffix = read_template(args[1])
    run_hex = string.format("%08x", tonumber(args[2]))
    if args[4] ~= nil then
        bench_pace(tonumber(args[3]), tonumber(args[4]))
    end
end

function request()
    counter = counter + 1
    local event_id = run_hex .. string.format("%04x%012x", thread_id, counter)
    local session_id = SESSION_ID_PREFIX .. string.format("%018x", (thread_id * 97 + counter) % SESSIONS)
    return wrk.format("POST", nil, headers, prefix .. event_id .. middle .. session_id .. suffix)
end
