"""Queues on a real PostgreSQL: snapshots equal replays, racing writers, concurrent dispatchers, and the
deadline scheduler after a restart."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta

import msgspec

from service.dispatch.dispatcher import Dispatcher
from service.dispatch.queues import Queues, stream_of
from service.dispatch.scheduler import Scheduler
from service.edrv.intake import EdrvIntake
from service.eventlog.doorbell import Doorbell
from service.eventlog.store import EventStore
from service.projections.catalog import PROJECTIONS
from service.projections.runner import ProjectionRunner
from service.queue.commands import Dispatch, JoinQueue, SetQueuePolicy
from service.queue.events import OfferSnoozed, QueueEvent, TicketOffered, decode_event
from service.queue.fold import evolve_queue, replay
from service.queue.model import QueueState, SiteConnector, requirements_of
from service.simulate.edrv import Connector, Station, session_started
from tests.conftest import Db
from tests.queue_traffic import T0, play


async def full_replay(store: EventStore, location: str) -> QueueState:
    events = await store.read_stream(stream_of(location))
    return replay(location, (decode_event(e.type, e.data) for e in events))


async def queue_events(store: EventStore, location: str) -> list[QueueEvent]:
    return [decode_event(e.type, e.data) for e in await store.read_stream(stream_of(location))]


async def test_loading_a_queue_from_its_snapshot_equals_replaying_its_whole_stream(
    store: EventStore, db: Db
) -> None:
    queues = Queues(store)
    assert await play(queues, seed=11, steps=250) > 100
    for location in ("qa", "qb"):
        replayed = await full_replay(store, location)
        assert replayed.version > 20
        assert await queues.load(location) == replayed
        # A stale snapshot (an older version) is caught up by folding the events after it.
        await db.execute(
            "UPDATE queue_snapshots SET version = $2, state = $3 WHERE location_id = $1",
            location,
            10,
            msgspec.json.encode(replay(location, (await queue_events(store, location))[:10])),
        )
        assert await queues.load(location) == replayed
        # A snapshot of another shape (an older release) is ignored, and no snapshot at all still works.
        await db.execute("UPDATE queue_snapshots SET schema = 0 WHERE location_id = $1", location)
        assert await queues.load(location) == replayed
        await db.execute("DELETE FROM queue_snapshots WHERE location_id = $1", location)
        assert await queues.load(location) == replayed


async def test_concurrent_joins_all_get_a_place_in_join_order_without_gaps(store: EventStore) -> None:
    queues = Queues(store)

    async def join(n: int) -> None:
        command = JoinQueue(
            ticket_id=f"t{n}",
            driver_id=f"d{n}",
            edrv_user_id=None,
            requirements=requirements_of(None, None, None),
        )
        await queues.execute("busy", command, actor="test", now=T0)

    await asyncio.gather(*(join(n) for n in range(40)))
    state = await queues.load("busy")
    assert sorted(t.rank for t in state.tickets.values()) == list(range(1, 41))
    assert state == await full_replay(store, "busy")


def assert_offers_exactly_once(location: str, events: list[QueueEvent]) -> int:
    """Replay event by event: no connector is ever offered while another live ticket holds it, and no
    ticket is offered while it has a live offer. Returns the number of offers."""
    state = QueueState(location_id=location)
    offers = 0
    for event in events:
        if isinstance(event, TicketOffered):
            offers += 1
            ticket = state.tickets[event.ticket_id]
            assert ticket.status == "waiting", f"{event.ticket_id} offered twice"
            spot = f"{event.chargestation_id}/{event.connector_id}"
            assert state.holder_of(spot) is None, f"{spot} offered to two tickets"
        state = evolve_queue(state, event)
    return offers


async def test_two_dispatchers_racing_over_the_same_log_offer_each_connector_once(
    engine: object, database_url: str, db: Db
) -> None:
    """Two dispatchers with checkpoints of their own both react to every event, at the same time as
    drivers join: the worst case. The stream's versions still make every offer happen once."""
    from service.db.engine import create_engine

    engines = [create_engine(database_url, pool_size=4) for _ in range(2)]
    stores = [EventStore(e) for e in engines]
    for s in stores:
        await s.start()
    try:
        intake = EdrvIntake(stores[0], secret=None, tolerance_s=300)
        station = Station(
            "st",
            "race",
            [Connector(f"k{i}", "CCS2", 150, "Charging") for i in range(4)],
        )
        dispatchers = []
        for n, s in enumerate(stores):
            dispatcher = Dispatcher(Queues(s))
            dispatcher.name = f"dispatcher_{n}"
            dispatchers.append(ProjectionRunner(s, dispatcher, Doorbell(s.engine), batch_size=7))
        await intake.receive(station.online_body(), signature=None, content_type="application/json")
        rng = random.Random(5)
        stop = asyncio.Event()

        async def dispatch_forever(runner: ProjectionRunner) -> None:
            while not stop.is_set():
                if not await runner.step():
                    await asyncio.sleep(0.001)

        running = [asyncio.create_task(dispatch_forever(r)) for r in dispatchers]
        for n in range(60):
            connector = rng.choice(station.connectors)
            status = rng.choice(["Available", "Charging", "Faulted", "Available"])
            await intake.receive(
                station.status(connector.id, status),
                signature=None,
                content_type="application/json",
            )
            if n % 3 == 0:
                await Queues(stores[n % 2]).execute(
                    "race",
                    JoinQueue(
                        ticket_id=f"t{n}",
                        driver_id=f"d{n}",
                        edrv_user_id=f"u{n}",
                        requirements=requirements_of(["CCS2"], None, None),
                    ),
                    actor="test",
                )
            if n % 7 == 0:
                await intake.receive(
                    session_started(f"x{n}", "st", connector.id, f"u{rng.randrange(60)}"),
                    signature=None,
                    content_type="application/json",
                )
        head = await stores[0].head_position()
        for _ in range(500):  # both dispatchers catch up with the log and each other
            positions = await db.fetch(
                "SELECT position FROM projection_checkpoints WHERE name LIKE 'dispatcher_%'"
            )
            head = await stores[0].head_position()
            if len(positions) == 2 and all(p[0] == head for p in positions):
                break
            await asyncio.sleep(0.02)
        stop.set()
        await asyncio.gather(*running)
        offers = assert_offers_exactly_once("race", await queue_events(stores[0], "race"))
        assert offers >= 10
        assert await db.fetchval("SELECT count(*) FROM projection_errors") == 0
    finally:
        for s in stores:
            await s.close()
        for e in engines:
            await e.dispose()


async def test_deadlines_that_passed_while_the_service_was_down_are_handled_at_startup_in_deadline_order(
    store: EventStore, db: Db
) -> None:
    queues = Queues(store)
    free = tuple(
        SiteConnector(chargestation_id="s", connector_id=f"k{i}", type="CCS2", power_kw=50, state="offerable")
        for i in range(2)
    )
    # Two queues, offers made at different times with different windows: deadlines interleave.
    windows = {"early": 5, "late": 20}
    for location, window in windows.items():
        await queues.execute(location, SetQueuePolicy(respond_within_s=window), actor="test", now=T0)
        for n in range(2):
            await queues.execute(
                location,
                JoinQueue(
                    ticket_id=f"{location}-{n}",
                    driver_id=f"d{n}",
                    edrv_user_id=None,
                    requirements=requirements_of(None, None, None),
                ),
                actor="test",
                now=T0,
            )
    await queues.execute("early", Dispatch(connectors=free[:1]), actor="test", now=T0 + timedelta(seconds=10))
    await queues.execute("late", Dispatch(connectors=free), actor="test", now=T0)
    # Deadlines: late-0 and late-1 at T0+20 s, early-0 at T0+15 s.
    tickets = PROJECTIONS["tickets"]
    runner = ProjectionRunner(store, tickets, Doorbell(store.engine))
    while await runner.step():
        pass
    # "Restart" long after: a fresh scheduler acts on all of them, earliest first.
    head = await store.head_position()
    await Scheduler(queues).tick(now=T0 + timedelta(hours=1))
    snoozed = [
        (e.position, event)
        for e in await store.read_all(head)
        for event in (decode_event(e.type, e.data),)
        if isinstance(event, OfferSnoozed)
    ]
    assert [(event.ticket_id, event.at - T0) for _, event in snoozed] == [
        ("early-0", timedelta(seconds=15)),
        ("late-0", timedelta(seconds=20)),
        ("late-1", timedelta(seconds=20)),
    ]
    assert all(event.by == "no_answer" for _, event in snoozed)
    # The snoozes that followed ended long ago too, and were ended in the same pass, each in its place.
    ended = [(e.stream_id, e.data) for e in await store.read_all(head) if e.type == "ticket.snooze_ended"]
    assert len(ended) == 3
    assert await store.head_position() == head + 6
    # Once the read model has caught up, there is nothing left to do.
    while await runner.step():
        pass
    assert await Scheduler(queues).tick(now=T0 + timedelta(hours=1)) is None
    assert await store.head_position() == head + 6


async def test_a_session_start_reported_again_later_is_no_news_to_the_dispatcher(store: EventStore) -> None:
    """eDRV may report a start again in a new delivery. The first report of a stranger's session on a
    free connector changed nothing; reported again after that connector was offered, it must not be
    taken for a queue jumper (a genuinely new session is)."""
    intake = EdrvIntake(store, secret=None, tolerance_s=300)
    queues = Queues(store)
    runner = ProjectionRunner(store, Dispatcher(queues), Doorbell(store.engine))

    async def deliver(body: bytes) -> None:
        await intake.receive(body, signature=None, content_type="application/json")
        while await runner.step():
            pass

    station = Station("st", "site", [Connector("k1", "CCS2", 150, "Charging")])
    await deliver(station.online_body())
    join = JoinQueue(
        ticket_id="t1", driver_id="d1", edrv_user_id="u1", requirements=requirements_of(None, None, None)
    )
    await queues.execute("site", join, actor="test")
    await deliver(session_started("s-old", "st", "k1", "stranger"))
    await deliver(station.status("k1", "Available"))
    assert (await queues.load("site")).tickets["t1"].status == "offered"

    await deliver(session_started("s-old", "st", "k1", "stranger"))  # the same start, a new delivery
    assert (await queues.load("site")).tickets["t1"].status == "offered"

    await deliver(session_started("s-new", "st", "k1", "stranger"))
    ticket = (await queues.load("site")).tickets["t1"]
    assert (ticket.status, ticket.reason) == ("waiting", "queue_jumper")
