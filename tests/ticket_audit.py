"""An independent reading of the queue streams: every ticket's life folded from the event log with the
queue's rules written out again (not the service's own fold), so that a test can hold the service's
decisions, its answers and its streams against what the log says happened."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tests.conftest import Db

LIVE = ("waiting", "offered", "held")
# From which statuses each ticket event may happen (a join starts a ticket: it has no "from").
ALLOWED_FROM: dict[str, tuple[str, ...]] = {
    "ticket.offered": ("waiting",),
    "ticket.accepted": ("offered",),
    "ticket.snoozed": ("offered",),
    "ticket.snooze_ended": ("waiting",),
    "ticket.offer_revoked": ("offered", "held"),
    "ticket.fulfilled": LIVE,
    "ticket.no_show": ("held",),
    "ticket.cancelled": LIVE,
    "ticket.removed": LIVE,
}
STATUS_AFTER = {
    "ticket.offered": "offered",
    "ticket.accepted": "held",
    "ticket.snoozed": "waiting",
    "ticket.snooze_ended": "waiting",
    "ticket.offer_revoked": "waiting",
    "ticket.fulfilled": "fulfilled",
    "ticket.no_show": "no_show",
    "ticket.cancelled": "cancelled",
    "ticket.removed": "removed",
}


@dataclass(frozen=True)
class Step:
    """The ticket right after one of its events."""

    position: int
    type: str
    version: int
    status: str
    spot: str | None
    """The connector offered to or held for it (``station/connector``)."""
    commit: int
    """Events one command appended together share it: nobody can see the ticket between them."""


@dataclass
class Life:
    ticket_id: str
    location_id: str
    driver_id: str
    idempotency_key: str | None
    steps: list[Step] = field(default_factory=list)
    snoozed_until: datetime | None = None

    @property
    def last(self) -> Step:
        return self.steps[-1]

    def at(self, position: int) -> Step | None:
        """The ticket as the log has it at ``position`` (None: it had not joined yet)."""
        before = [s for s in self.steps if s.position <= position]
        return before[-1] if before else None

    def commits(self) -> list[tuple[int, int]]:
        """Each of its updates: the first and the last position of the events one command appended."""
        spans: dict[int, tuple[int, int]] = {}
        for step in self.steps:
            first, _ = spans.get(step.commit, (step.position, step.position))
            spans[step.commit] = (first, step.position)
        return list(spans.values())


@dataclass
class Audit:
    lives: dict[str, Life] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    paused: set[str] = field(default_factory=set)

    def live(self) -> list[Life]:
        return [life for life in self.lives.values() if life.last.status in LIVE]


async def read_audit(db: Db) -> Audit:
    rows = await db.fetch(
        "SELECT position, stream_id, version, type, data::text, metadata::text, recorded_at FROM events"
        " WHERE stream_id LIKE 'queue-%' ORDER BY position"
    )
    return audit([tuple(row) for row in rows])


def audit(rows: list[tuple[Any, ...]]) -> Audit:
    """Fold queue events (position, stream_id, version, type, data, metadata, recorded_at) in log order,
    recording every step that breaks a rule: a connector offered or held for two tickets at once, a
    transition from the wrong status, a second live ticket of one driver at one site, a version gap."""
    result = Audit()
    holders: dict[str, str] = {}  # spot -> the ticket it is offered to or held for
    versions: dict[str, int] = {}
    last_commit: dict[str, tuple[Any, str, int]] = {}  # stream -> (recorded_at, metadata, commit number)
    commits = 0
    for position, stream_id, version, type, data, metadata, recorded_at in rows:
        location = stream_id.removeprefix("queue-")
        if version != versions.get(stream_id, 0) + 1:
            result.violations.append(
                f"{position}: {stream_id} version {version} after {versions.get(stream_id)}"
            )
        versions[stream_id] = version
        previous = last_commit.get(stream_id)
        # One append is one transaction: its events share recorded_at (now()) and the command's metadata.
        if previous is None or (previous[0], previous[1]) != (recorded_at, metadata):
            commits += 1
        last_commit[stream_id] = (recorded_at, metadata, commits)
        body = json.loads(data)
        if type == "queue.paused":
            result.paused.add(location)
        elif type == "queue.resumed":
            result.paused.discard(location)
        if not type.startswith("ticket."):
            continue
        ticket_id = body["ticket_id"]
        life = result.lives.get(ticket_id)
        if type == "ticket.joined":
            if life is not None:
                result.violations.append(f"{position}: ticket {ticket_id} joined twice")
                continue
            mine = [
                other.ticket_id
                for other in result.lives.values()
                if (other.location_id, other.driver_id) == (location, body["driver_id"])
                and other.last.status in LIVE
            ]
            if mine:
                result.violations.append(
                    f"{position}: {body['driver_id']} joined {location} again beside {mine}"
                )
            life = Life(ticket_id, location, body["driver_id"], body.get("idempotency_key"))
            result.lives[ticket_id] = life
            life.steps.append(Step(position, type, 1, "waiting", None, commits))
            continue
        if life is None or life.location_id != location:
            result.violations.append(f"{position}: {type} of unknown ticket {ticket_id} in {stream_id}")
            continue
        before = life.last
        if before.status not in ALLOWED_FROM[type]:
            result.violations.append(f"{position}: {type} of {ticket_id} while {before.status}")
        spot = before.spot
        if type == "ticket.offered":
            spot = f"{body['chargestation_id']}/{body['connector_id']}"
            holder = holders.get(spot)
            if holder is not None and holder != ticket_id:
                result.violations.append(f"{position}: {spot} offered to {ticket_id} while {holder} has it")
            if life.snoozed_until is not None and life.snoozed_until > _time(body["at"]):
                result.violations.append(f"{position}: {ticket_id} offered while snoozed")
            holders[spot] = ticket_id
            life.snoozed_until = None
        elif type == "ticket.snoozed":
            life.snoozed_until = _time(body["snoozed_until"])
        elif type == "ticket.snooze_ended":
            life.snoozed_until = None
        if type != "ticket.offered" and type != "ticket.accepted":
            if spot is not None and holders.get(spot) == ticket_id:
                del holders[spot]
            spot = None
        life.steps.append(Step(position, type, before.version + 1, STATUS_AFTER[type], spot, commits))
    return result


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)
