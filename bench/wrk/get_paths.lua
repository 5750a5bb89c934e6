-- GETs a list of paths in turn, each with its own bearer token (or none): a driver's own ticket, or a
-- public page. Closed loop: each connection sends its next request when the previous one is answered.
--
-- Usage: wrk ... -s get_paths.lua <url> -- <requests file>
-- The file (written by bench/growth_reads.py) has one request a line: `<path>` or `<path>\t<token>`.
-- Each thread starts at its own place in the list, so the threads do not ask for the same one at once.

dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "summary.lua")

local requests = {}
local next_request = 1

function init(args)
    for line in io.lines(args[1]) do
        local path, token = line:match("^([^\t]+)\t(.+)$")
        local headers = {}
        if path then
            headers["Authorization"] = "Bearer " .. token
        else
            path = line
        end
        -- Formatted once: the load generator's own work stays small next to the app's.
        requests[#requests + 1] = wrk.format("GET", path, headers)
    end
    assert(#requests > 0, "no requests in " .. args[1])
    next_request = ((thread_id - 1) * 7919) % #requests + 1
end

function request()
    local text = requests[next_request]
    next_request = next_request % #requests + 1
    return text
end
