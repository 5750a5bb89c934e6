"""Random but reproducible traffic for queues: drivers, operators, the clock and a flapping site."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from service.dispatch.queues import Queues
from service.queue.commands import (
    AcceptOffer,
    Command,
    Dispatch,
    HandleDeadlines,
    JoinQueue,
    LeaveQueue,
    RecordSessionStart,
    RemoveTicket,
    SetQueuePolicy,
    SnoozeOffer,
)
from service.queue.decide import Rejected
from service.queue.model import ConnectorState, QueueState, SiteConnector, requirements_of

T0 = datetime(2026, 6, 1, 14, tzinfo=UTC)
SITE = (("s1", "k1", "CCS2", 150.0), ("s1", "k2", "CHADEMO", 50.0), ("s2", "k1", "Type2", 22.0))
STATES: tuple[ConnectorState, ...] = ("offerable", "offerable", "in_use", "in_use", "faulted", "offline")


def site(rng: random.Random) -> tuple[SiteConnector, ...]:
    return tuple(
        SiteConnector(chargestation_id=s, connector_id=c, type=t, power_kw=p, state=rng.choice(STATES))
        for s, c, t, p in SITE
    )


def random_command(rng: random.Random, state: QueueState, n: int) -> Command:
    live = sorted(state.tickets)
    roll = rng.random()
    if roll < 0.25 or not live:
        return JoinQueue(
            ticket_id=f"t{n}",
            driver_id=f"d{rng.randrange(15)}",
            edrv_user_id=rng.choice([None, f"u{rng.randrange(15)}"]),
            requirements=requirements_of(
                rng.choice([None, ["ccs2"], ["Type 2"], ["CCS2", "CHAdeMO"]]),
                rng.choice([None, 40.0]),
                rng.choice([None, None, ["s2"]]),
            ),
        )
    ticket = rng.choice(live)
    if roll < 0.35:
        return AcceptOffer(ticket_id=ticket)
    if roll < 0.42:
        return SnoozeOffer(ticket_id=ticket)
    if roll < 0.47:
        return LeaveQueue(ticket_id=ticket)
    if roll < 0.50:
        return RemoveTicket(ticket_id=ticket, reason="test")
    if roll < 0.62:
        return HandleDeadlines()
    if roll < 0.72:
        s, c, _, _ = rng.choice(SITE)
        return RecordSessionStart(
            session_id=f"x{n}", chargestation_id=s, connector_id=c, edrv_user_id=f"u{rng.randrange(15)}"
        )
    if roll < 0.74:
        return SetQueuePolicy(respond_within_s=rng.choice([30, 60]), paused=rng.random() < 0.3)
    return Dispatch(connectors=site(rng))


async def play(queues: Queues, seed: int, steps: int, locations: tuple[str, ...] = ("qa", "qb")) -> int:
    """Run ``steps`` random commands through ``queues``; return how many appended something."""
    rng = random.Random(seed)
    now = T0
    changed = 0
    for n in range(steps):
        now += timedelta(seconds=rng.randrange(1, 90))
        location = rng.choice(locations)
        command = random_command(rng, await queues.load(location), n)
        try:
            outcome = await queues.execute(location, command, actor="test", now=now)
        except Rejected:
            continue
        changed += bool(outcome.events)
    return changed
