"""The request bodies the load generators send: the ``session.updated`` fixture with fresh ids.

Chargeline deduplicates deliveries by the envelope ``_id``, so every request must carry a new one or
the benchmark would measure the duplicate path. ``data._id`` cycles through a few hundred sessions so
each session stream receives several versions, as in real traffic.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench import ROOT

FIXTURE = ROOT / "tests" / "fixtures" / "edrv" / "session.updated.loose-types.json"

EVENT_ID_MARK = "{{event_id}}"
SESSION_ID_MARK = "{{session_id}}"
SESSIONS = 300
SESSION_ID_PREFIX = "6601bb"  # the fixture's session ids start so; the rest is the session number


def template() -> str:
    """The compact fixture with the two ids replaced by marks (the event id's comes first)."""
    body = json.loads(FIXTURE.read_text())
    body["_id"] = EVENT_ID_MARK
    body["data"]["_id"] = SESSION_ID_MARK
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    assert text.index(EVENT_ID_MARK) < text.index(SESSION_ID_MARK), "the Lua script relies on this order"
    return text


def write_template(path: Path) -> Path:
    """Write the template for the wrk script, which fills the marks in per request."""
    path.write_text(template(), encoding="utf-8")
    return path


def event_id(run: int, worker: int, counter: int) -> str:
    """24 hex chars, like eDRV's ids; unique per (run, worker, counter). Same layout as the Lua script."""
    return f"{run:08x}{worker:04x}{counter:012x}"


def session_id(worker: int, counter: int) -> str:
    return f"{SESSION_ID_PREFIX}{(worker * 97 + counter) % SESSIONS:018x}"


class Bodies:
    """Unique bodies for one worker of one load run (the Python load generator's side of the Lua script)."""

    def __init__(self, run: int, worker: int) -> None:
        prefix, rest = template().split(EVENT_ID_MARK)
        middle, suffix = rest.split(SESSION_ID_MARK)
        self._parts = (prefix, middle, suffix)
        self._run, self._worker, self._counter = run, worker, 0

    def next(self) -> bytes:
        self._counter += 1
        prefix, middle, suffix = self._parts
        ids = event_id(self._run, self._worker, self._counter), session_id(self._worker, self._counter)
        return f"{prefix}{ids[0]}{middle}{ids[1]}{suffix}".encode()
