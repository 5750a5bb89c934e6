"""The driver queue's transitions, one test per rule: what each command decides from a given state.

Every scenario is built the way the service builds it: commands decided on the current state, their
events folded in with ``replay``. Times are fixed (UTC) so deadlines are exact.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from service.queue.commands import (
    AcceptOffer,
    Command,
    Dispatch,
    HandleDeadlines,
    JoinQueue,
    LeaveQueue,
    PauseQueue,
    RecordSessionStart,
    RemoveTicket,
    ResumeQueue,
    SetQueuePolicy,
    SnoozeOffer,
)
from service.queue.decide import Rejected, decide
from service.queue.events import (
    EVENT_CLASSES,
    OfferAccepted,
    OfferRevoked,
    OfferSnoozed,
    QueueEvent,
    QueuePaused,
    QueuePolicySet,
    QueueResumed,
    RevokeReason,
    SnoozeEnded,
    TicketCancelled,
    TicketFulfilled,
    TicketJoined,
    TicketNoShow,
    TicketOffered,
    TicketRemoved,
    decode_event,
    encode_event,
)
from service.queue.fold import replay
from service.queue.model import (
    ConnectorState,
    Policy,
    QueueState,
    SiteConnector,
    Ticket,
    requirements_of,
)

T0 = datetime(2024, 5, 3, 8, 0, tzinfo=UTC)
LOCATION = "6601aa00000000000000001a"
RESPOND_S = Policy().respond_within_s
PLUG_IN_S = Policy().plug_in_within_s


def at(s: int) -> datetime:
    return T0 + timedelta(seconds=s)


def connector(
    connector_id: str = "c1",
    *,
    station: str = "st1",
    type: str | None = "CCS2",
    power_kw: float | None = 50.0,
    state: ConnectorState = "offerable",
) -> SiteConnector:
    return SiteConnector(
        chargestation_id=station, connector_id=connector_id, type=type, power_kw=power_kw, state=state
    )


C1 = connector("c1")
C2 = connector("c2")


class Queue:
    """A queue's state driven through ``decide`` and ``replay``, keeping every event applied."""

    def __init__(self, policy: Policy | None = None) -> None:
        self.state = QueueState(location_id=LOCATION, policy=policy or Policy())
        self.log: list[QueueEvent] = []

    def run(self, command: Command, now: datetime = T0) -> list[QueueEvent]:
        events = decide(self.state, command, now)
        self.state = replay(LOCATION, events, self.state)
        self.log += events
        return events

    def join(
        self,
        ticket_id: str,
        *,
        edrv_user_id: str | None = None,
        types: list[str] | None = None,
        now: datetime = T0,
    ) -> list[QueueEvent]:
        command = JoinQueue(
            ticket_id=ticket_id,
            driver_id=f"driver-{ticket_id}",
            edrv_user_id=edrv_user_id,
            requirements=requirements_of(types, None, None),
        )
        return self.run(command, now)

    def dispatch(self, *connectors: SiteConnector, now: datetime = T0) -> list[QueueEvent]:
        return self.run(Dispatch(connectors=connectors), now)

    def session(
        self, session_id: str, edrv_user_id: str | None, on: SiteConnector = C1, now: datetime = T0
    ) -> list[QueueEvent]:
        command = RecordSessionStart(
            session_id=session_id,
            chargestation_id=on.chargestation_id,
            connector_id=on.connector_id,
            edrv_user_id=edrv_user_id,
        )
        return self.run(command, now)

    def ticket(self, ticket_id: str) -> Ticket:
        return self.state.tickets[ticket_id]

    def rejects(self, command: Command, now: datetime = T0) -> Rejected:
        before = self.state
        with pytest.raises(Rejected) as refused:
            decide(self.state, command, now)
        assert self.state == before
        return refused.value


def offered_queue(edrv_user_id: str | None = "u1", policy: Policy | None = None) -> Queue:
    """Ticket ``t1`` offered connector ``c1`` at T0."""
    queue = Queue(policy)
    queue.join("t1", edrv_user_id=edrv_user_id)
    queue.dispatch(C1)
    assert queue.ticket("t1").status == "offered"
    return queue


def held_queue(edrv_user_id: str | None = "u1") -> Queue:
    """Ticket ``t1`` offered ``c1`` at T0 and accepted at T0+10s."""
    queue = offered_queue(edrv_user_id)
    queue.run(AcceptOffer(ticket_id="t1"), at(10))
    assert queue.ticket("t1").status == "held"
    return queue


def queue_with_ticket_in(status: str) -> Queue:
    if status == "waiting":
        queue = Queue()
        queue.join("t1", edrv_user_id="u1")
        return queue
    return offered_queue() if status == "offered" else held_queue()


# --- joining ---------------------------------------------------------------------------------------


def test_joining_adds_a_waiting_ticket_at_the_back_of_the_line() -> None:
    queue = Queue()
    (first,) = queue.join("t1", edrv_user_id="u1", types=["Type 2"])
    queue.join("t2")
    assert first == TicketJoined(
        ticket_id="t1",
        at=T0,
        driver_id="driver-t1",
        edrv_user_id="u1",
        requirements=requirements_of(["TYPE2"], None, None),
        rank=1,
    )
    t1, t2 = queue.ticket("t1"), queue.ticket("t2")
    assert (t1.status, t1.rank, t1.offer, t1.created_at) == ("waiting", 1, None, T0)
    assert (t2.status, t2.rank) == ("waiting", 2)
    assert [t.id for t in queue.state.line()] == ["t1", "t2"]


def test_joining_keeps_the_idempotency_key() -> None:
    queue = Queue()
    command = JoinQueue(
        ticket_id="t1",
        driver_id="d1",
        edrv_user_id=None,
        requirements=requirements_of(None, None, None),
        idempotency_key="key-1",
    )
    queue.run(command)
    assert queue.ticket("t1").idempotency_key == "key-1"


def test_a_driver_with_a_live_ticket_cannot_join_again() -> None:
    queue = offered_queue()
    again = JoinQueue(
        ticket_id="t9",
        driver_id="driver-t1",
        edrv_user_id="u1",
        requirements=requirements_of(None, None, None),
    )
    refused = queue.rejects(again)
    assert refused.code == "already-queued"
    assert refused.ticket == queue.ticket("t1")


def test_a_driver_whose_ticket_ended_may_join_again_behind_the_others() -> None:
    queue = Queue()
    queue.join("t1")
    queue.join("t2")
    queue.run(LeaveQueue(ticket_id="t1"))
    again = JoinQueue(
        ticket_id="t3",
        driver_id="driver-t1",
        edrv_user_id=None,
        requirements=requirements_of(None, None, None),
    )
    queue.run(again, at(5))
    assert queue.ticket("t3").rank == 3
    assert [t.id for t in queue.state.line()] == ["t2", "t3"]


def test_joining_a_full_queue_is_refused() -> None:
    queue = Queue(Policy(max_queue_length=2))
    queue.join("t1")
    queue.join("t2")
    refused = queue.rejects(
        JoinQueue(
            ticket_id="t3", driver_id="d3", edrv_user_id=None, requirements=requirements_of(None, None, None)
        )
    )
    assert refused.code == "queue-full"


def test_a_place_freed_in_a_full_queue_can_be_taken() -> None:
    queue = Queue(Policy(max_queue_length=2))
    queue.join("t1")
    queue.join("t2")
    queue.run(LeaveQueue(ticket_id="t1"))
    assert len(queue.join("t3")) == 1


# --- offers ----------------------------------------------------------------------------------------


def test_a_waiting_ticket_is_offered_a_free_compatible_connector_for_the_response_window() -> None:
    queue = Queue()
    queue.join("t1")
    events = queue.dispatch(C1, now=at(30))
    assert events == [
        TicketOffered(
            ticket_id="t1",
            at=at(30),
            chargestation_id="st1",
            connector_id="c1",
            respond_by=at(30 + RESPOND_S),
        )
    ]
    ticket = queue.ticket("t1")
    assert ticket.status == "offered"
    assert ticket.offer is not None
    assert (ticket.offer.spot, ticket.offer.offered_at, ticket.offer.respond_by) == (
        "st1/c1",
        at(30),
        at(210),
    )
    assert ticket.deadline == at(210)


def test_an_offered_ticket_is_not_offered_a_second_connector() -> None:
    queue = offered_queue()
    assert queue.dispatch(C1, C2, now=at(5)) == []


# --- accepting -------------------------------------------------------------------------------------


def test_accepting_an_offer_holds_the_connector_for_the_plug_in_window() -> None:
    queue = offered_queue()
    events = queue.run(AcceptOffer(ticket_id="t1"), at(20))
    assert events == [OfferAccepted(ticket_id="t1", at=at(20), hold_until=at(20 + PLUG_IN_S))]
    ticket = queue.ticket("t1")
    assert ticket.status == "held"
    assert ticket.offer is not None
    assert (ticket.offer.spot, ticket.offer.hold_until) == ("st1/c1", at(620))
    assert ticket.deadline == at(620)


def test_accepting_just_before_the_response_deadline_is_allowed() -> None:
    queue = offered_queue()
    assert len(queue.run(AcceptOffer(ticket_id="t1"), at(RESPOND_S - 1))) == 1


def test_accepting_at_or_after_the_response_deadline_is_refused_as_the_deadline_has_passed() -> None:
    for moment in (RESPOND_S, RESPOND_S + 1):
        queue = offered_queue()
        assert queue.rejects(AcceptOffer(ticket_id="t1"), at(moment)).code == "offer-expired"


def test_snoozing_after_the_response_deadline_is_refused_the_offer_passes_on_by_itself() -> None:
    queue = offered_queue()
    assert queue.rejects(SnoozeOffer(ticket_id="t1"), at(RESPOND_S)).code == "offer-expired"


def test_accepting_a_waiting_ticket_is_refused() -> None:
    queue = queue_with_ticket_in("waiting")
    assert queue.rejects(AcceptOffer(ticket_id="t1")).code == "not-offered"


def test_accepting_a_held_ticket_again_is_refused() -> None:
    queue = held_queue()
    assert queue.rejects(AcceptOffer(ticket_id="t1"), at(20)).code == "not-offered"


def test_accepting_an_ended_ticket_is_refused() -> None:
    queue = offered_queue()
    queue.run(LeaveQueue(ticket_id="t1"))
    assert queue.rejects(AcceptOffer(ticket_id="t1")).code == "ticket-ended"


def test_accepting_an_unknown_ticket_is_refused() -> None:
    assert Queue().rejects(AcceptOffer(ticket_id="nobody")).code == "ticket-ended"


# --- snoozing --------------------------------------------------------------------------------------


def test_snoozing_an_offer_sends_the_ticket_back_to_waiting_with_its_place_kept() -> None:
    queue = offered_queue()
    events = queue.run(SnoozeOffer(ticket_id="t1"), at(20))
    assert events == [OfferSnoozed(ticket_id="t1", at=at(20), by="driver", snoozed_until=at(20 + RESPOND_S))]
    ticket = queue.ticket("t1")
    assert (ticket.status, ticket.offer, ticket.rank, ticket.snoozes_used) == ("waiting", None, 1, 1)
    assert (ticket.snoozed_until, ticket.deadline) == (at(200), at(200))


def test_snoozing_frees_the_connector_for_the_next_ticket() -> None:
    queue = offered_queue()
    queue.join("t2")
    queue.run(SnoozeOffer(ticket_id="t1"), at(20))
    (offer,) = queue.dispatch(C1, now=at(21))
    assert isinstance(offer, TicketOffered)
    assert offer.ticket_id == "t2"


def test_snoozing_past_max_snoozes_removes_the_ticket() -> None:
    queue = offered_queue(policy=Policy(max_snoozes=1))
    queue.run(SnoozeOffer(ticket_id="t1"), at(10))
    queue.run(HandleDeadlines(), at(10 + RESPOND_S))
    queue.dispatch(C1, now=at(200))
    events = queue.run(SnoozeOffer(ticket_id="t1"), at(210))
    assert events == [TicketRemoved(ticket_id="t1", at=at(210), reason="snoozed_too_often", by="policy")]
    assert "t1" not in queue.state.tickets


def test_snoozing_a_held_ticket_is_refused() -> None:
    queue = held_queue()
    assert queue.rejects(SnoozeOffer(ticket_id="t1"), at(20)).code == "not-offered"


def test_snoozing_a_waiting_ticket_is_refused() -> None:
    queue = queue_with_ticket_in("waiting")
    assert queue.rejects(SnoozeOffer(ticket_id="t1")).code == "not-offered"


def test_snoozing_an_ended_ticket_is_refused() -> None:
    queue = offered_queue()
    queue.run(RemoveTicket(ticket_id="t1", reason="abusive"))
    assert queue.rejects(SnoozeOffer(ticket_id="t1")).code == "ticket-ended"


# --- leaving and removal ---------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["waiting", "offered", "held"])
def test_leaving_cancels_a_live_ticket_and_frees_its_connector(status: str) -> None:
    queue = queue_with_ticket_in(status)
    queue.join("t2")
    assert queue.run(LeaveQueue(ticket_id="t1"), at(30)) == [TicketCancelled(ticket_id="t1", at=at(30))]
    assert "t1" not in queue.state.tickets
    assert [e.ticket_id for e in queue.dispatch(C1, now=at(31)) if isinstance(e, TicketOffered)] == ["t2"]


def test_leaving_again_does_nothing() -> None:
    queue = queue_with_ticket_in("waiting")
    queue.run(LeaveQueue(ticket_id="t1"))
    assert queue.run(LeaveQueue(ticket_id="t1"), at(1)) == []


def test_leaving_with_an_unknown_ticket_does_nothing() -> None:
    assert Queue().run(LeaveQueue(ticket_id="nobody")) == []


@pytest.mark.parametrize("status", ["waiting", "offered", "held"])
def test_an_operator_removes_a_live_ticket_with_a_reason(status: str) -> None:
    queue = queue_with_ticket_in(status)
    events = queue.run(RemoveTicket(ticket_id="t1", reason="blocking the bay"), at(30))
    assert events == [TicketRemoved(ticket_id="t1", at=at(30), reason="blocking the bay", by="operator")]
    assert queue.state.tickets == {}


def test_removing_an_ended_ticket_is_refused() -> None:
    queue = held_queue()
    queue.session("s1", "u1", now=at(30))
    assert queue.rejects(RemoveTicket(ticket_id="t1", reason="late"), at(40)).code == "ticket-ended"


# --- deadlines -------------------------------------------------------------------------------------


def test_no_deadline_is_acted_on_before_it_passes() -> None:
    queue = offered_queue()
    assert queue.run(HandleDeadlines(), at(RESPOND_S - 1)) == []


def test_no_answer_by_the_deadline_snoozes_the_offer_automatically() -> None:
    queue = offered_queue()
    events = queue.run(HandleDeadlines(), at(RESPOND_S))
    assert events == [
        OfferSnoozed(ticket_id="t1", at=at(RESPOND_S), by="no_answer", snoozed_until=at(2 * RESPOND_S))
    ]
    ticket = queue.ticket("t1")
    assert (ticket.status, ticket.offer, ticket.snoozes_used, ticket.rank) == ("waiting", None, 1, 1)


def test_a_late_deadline_run_dates_the_auto_snooze_at_the_deadline() -> None:
    queue = offered_queue()
    (event,) = queue.run(HandleDeadlines(), at(RESPOND_S + 30))
    assert isinstance(event, OfferSnoozed)
    assert event.at == at(RESPOND_S)


def test_no_answer_past_max_snoozes_removes_the_ticket_for_not_answering() -> None:
    queue = offered_queue(policy=Policy(max_snoozes=0))
    events = queue.run(HandleDeadlines(), at(RESPOND_S))
    assert events == [
        TicketRemoved(ticket_id="t1", at=at(RESPOND_S), reason="no_answer_too_often", by="policy")
    ]
    assert queue.state.tickets == {}


def test_driver_and_automatic_snoozes_count_together_towards_max_snoozes() -> None:
    queue = offered_queue(policy=Policy(max_snoozes=1))
    queue.run(SnoozeOffer(ticket_id="t1"), at(10))  # snoozed until 190
    assert queue.run(HandleDeadlines(), at(190)) == [SnoozeEnded(ticket_id="t1", at=at(190))]
    queue.dispatch(C1, now=at(190))
    (removed,) = queue.run(HandleDeadlines(), at(190 + RESPOND_S))
    assert isinstance(removed, TicketRemoved)
    assert (removed.reason, removed.by) == ("no_answer_too_often", "policy")


def test_not_plugging_in_within_the_hold_window_is_a_no_show() -> None:
    queue = held_queue()  # accepted at T0+10
    assert queue.run(HandleDeadlines(), at(10 + PLUG_IN_S - 1)) == []
    assert queue.run(HandleDeadlines(), at(10 + PLUG_IN_S + 5)) == [TicketNoShow(ticket_id="t1", at=at(610))]
    assert queue.state.tickets == {}


def test_a_snooze_ends_at_snoozed_until_and_the_ticket_may_be_offered_again() -> None:
    queue = offered_queue()
    queue.run(SnoozeOffer(ticket_id="t1"), at(20))  # snoozed until 200
    assert queue.dispatch(C1, now=at(199)) == []
    assert queue.run(HandleDeadlines(), at(200)) == [SnoozeEnded(ticket_id="t1", at=at(200))]
    ticket = queue.ticket("t1")
    assert (ticket.snoozed_until, ticket.deadline, ticket.snoozes_used) == (None, None, 1)
    assert [type(e) for e in queue.dispatch(C1, now=at(200))] == [TicketOffered]


def site(*offerable: str) -> tuple[SiteConnector, ...]:
    """Connectors c1..c4: those named offerable, the others in use."""
    return tuple(
        connector(c, state="offerable" if c in offerable else "in_use") for c in ("c1", "c2", "c3", "c4")
    )


def test_due_deadlines_are_handled_in_deadline_order() -> None:
    queue = Queue()
    for ticket_id in ("t1", "t2", "t3", "t4"):
        queue.join(ticket_id)
    queue.dispatch(*site("c1"), now=at(0))  # t1 offered c1: respond by 180
    queue.run(AcceptOffer(ticket_id="t1"), at(1))  # t1 held: plug in by 601
    queue.dispatch(*site("c2"), now=at(100))  # t2 offered c2: respond by 280
    queue.run(SnoozeOffer(ticket_id="t2"), at(150))  # t2 snoozed until 330
    queue.dispatch(*site("c3"), now=at(200))  # t3 offered c3: respond by 380
    queue.dispatch(*site("c4"), now=at(250))  # t4 offered c4: respond by 430
    events = queue.run(HandleDeadlines(), at(1000))
    # Acting late: the no-answer snoozes (380 + 180, 430 + 180) have ended by now too, so they end in
    # the same decision, each in its place in time.
    assert [(type(e), e.at) for e in events] == [
        (SnoozeEnded, at(330)),
        (OfferSnoozed, at(380)),
        (OfferSnoozed, at(430)),
        (SnoozeEnded, at(560)),
        (TicketNoShow, at(601)),
        (SnoozeEnded, at(610)),
    ]
    assert [e.ticket_id for e in events if isinstance(e, SnoozeEnded | OfferSnoozed | TicketNoShow)] == [
        "t2",
        "t3",
        "t4",
        "t3",
        "t1",
        "t4",
    ]


def test_deadlines_passing_at_the_same_moment_are_handled_in_line_order() -> None:
    queue = Queue()
    queue.join("t1")
    queue.join("t2")
    queue.dispatch(C1, C2)
    events = queue.run(HandleDeadlines(), at(RESPOND_S))
    assert [e.ticket_id for e in events if isinstance(e, OfferSnoozed)] == ["t1", "t2"]


def test_handling_deadlines_again_does_nothing() -> None:
    queue = held_queue()
    queue.join("t2")
    queue.dispatch(C1, C2, now=at(20))
    assert queue.run(HandleDeadlines(), at(RESPOND_S + 30)) != []
    assert queue.run(HandleDeadlines(), at(RESPOND_S + 30)) == []


def test_handling_deadlines_long_after_an_unanswered_offer_is_idempotent() -> None:
    queue = offered_queue()
    late = at(3 * RESPOND_S)  # the auto-snooze is dated 180 and ends at 360, before "now"
    assert [type(e) for e in queue.run(HandleDeadlines(), late)] == [OfferSnoozed, SnoozeEnded]
    assert queue.run(HandleDeadlines(), late) == []


# --- session starts --------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["offered", "held"])
def test_a_session_by_the_ticket_driver_on_the_offered_connector_fulfils_the_ticket(status: str) -> None:
    queue = queue_with_ticket_in(status)
    events = queue.session("s1", "u1", now=at(60))
    assert events == [
        TicketFulfilled(ticket_id="t1", at=at(60), session_id="s1", chargestation_id="st1", connector_id="c1")
    ]
    assert queue.state.tickets == {}
    assert queue.state.sessions_seen == {"st1/c1": ("s1",)}


@pytest.mark.parametrize("starter", ["u-someone", None])
def test_anyone_starting_on_the_connector_fulfils_a_ticket_without_an_edrv_user(starter: str | None) -> None:
    queue = held_queue(edrv_user_id=None)
    events = queue.session("s1", starter, now=at(60))
    assert events == [
        TicketFulfilled(ticket_id="t1", at=at(60), session_id="s1", chargestation_id="st1", connector_id="c1")
    ]


@pytest.mark.parametrize("jumper", ["u-someone", None])
@pytest.mark.parametrize("status", ["offered", "held"])
def test_a_queue_jumper_takes_the_offer_away_and_puts_the_ticket_at_the_head(
    status: str, jumper: str | None
) -> None:
    queue = Queue()
    queue.join("t0", types=["Type2"])  # first in line, but cannot use c1
    queue.join("t1", edrv_user_id="u1")
    queue.dispatch(C1)
    if status == "held":
        queue.run(AcceptOffer(ticket_id="t1"), at(10))
    assert queue.ticket("t1").status == status
    events = queue.session("s1", jumper, now=at(60))
    assert events == [
        OfferRevoked(
            ticket_id="t1",
            at=at(60),
            reason="queue_jumper",
            chargestation_id="st1",
            connector_id="c1",
            session_id="s1",
        )
    ]
    t1 = queue.ticket("t1")
    assert (t1.status, t1.offer, t1.priority, t1.reason, t1.rank) == (
        "waiting",
        None,
        True,
        "queue_jumper",
        2,
    )
    assert [t.id for t in queue.state.line()] == ["t1", "t0"]
    type2 = connector("c2", type="Type2")
    events = queue.dispatch(connector("c1", state="in_use"), type2, now=at(61))
    assert [(e.ticket_id, e.connector_id) for e in events if isinstance(e, TicketOffered)] == [("t1", "c2")]


def test_a_jumper_with_a_ticket_in_line_has_it_fulfilled_as_jumped() -> None:
    queue = offered_queue()
    queue.join("t2", edrv_user_id="u2")
    events = queue.session("s1", "u2", now=at(60))
    assert events == [
        TicketFulfilled(
            ticket_id="t2",
            at=at(60),
            session_id="s1",
            chargestation_id="st1",
            connector_id="c1",
            jumped=True,
        ),
        OfferRevoked(
            ticket_id="t1",
            at=at(60),
            reason="queue_jumper",
            chargestation_id="st1",
            connector_id="c1",
            session_id="s1",
        ),
    ]
    assert list(queue.state.tickets) == ["t1"]
    assert queue.ticket("t1").priority


def test_a_ticket_without_edrv_user_loses_its_offer_to_a_jumper_who_is_in_line() -> None:
    queue = offered_queue(edrv_user_id=None)
    queue.join("t2", edrv_user_id="u2")
    events = queue.session("s1", "u2", now=at(60))
    assert [(type(e), e.ticket_id) for e in events if isinstance(e, TicketFulfilled | OfferRevoked)] == [
        (TicketFulfilled, "t2"),
        (OfferRevoked, "t1"),
    ]


def test_a_driver_in_line_who_starts_on_an_unoffered_free_connector_is_fulfilled() -> None:
    queue = offered_queue()
    queue.join("t2", edrv_user_id="u2")
    events = queue.session("s2", "u2", on=C2, now=at(60))
    assert events == [
        TicketFulfilled(ticket_id="t2", at=at(60), session_id="s2", chargestation_id="st1", connector_id="c2")
    ]
    assert queue.ticket("t1").status == "offered"


def test_an_offered_driver_who_starts_on_another_free_connector_is_fulfilled_and_frees_the_offer() -> None:
    queue = offered_queue()
    queue.join("t2")
    queue.session("s2", "u1", on=C2, now=at(60))
    assert "t1" not in queue.state.tickets
    assert [e.ticket_id for e in queue.dispatch(C1, now=at(61)) if isinstance(e, TicketOffered)] == ["t2"]


def test_a_session_by_someone_not_in_line_on_an_unoffered_connector_changes_nothing() -> None:
    queue = offered_queue()
    assert queue.session("s2", "u-stranger", on=C2, now=at(60)) == []
    assert queue.session("s3", None, on=C2, now=at(61)) == []


@pytest.mark.parametrize("starter", ["u1", "u-jumper"])
def test_the_same_session_reported_twice_is_acted_on_once(starter: str) -> None:
    queue = offered_queue()
    queue.join("t2")
    assert queue.session("s1", starter, now=at(60)) != []
    queue.dispatch(C1, now=at(3600))  # the session is over and c1 is offered again
    offered = {t.id: t for t in queue.state.tickets.values() if t.status == "offered"}
    assert offered  # someone holds c1 who a second reaction to s1 would take it from
    assert queue.session("s1", starter, now=at(3601)) == []


def test_a_session_reported_again_after_a_later_session_on_the_connector_does_nothing() -> None:
    queue = offered_queue()
    queue.join("t2", edrv_user_id="u2")
    queue.join("t3", edrv_user_id="u3")
    queue.session("s1", "u1", now=at(60))  # t1 fulfilled on c1
    queue.dispatch(C1, now=at(3600))  # s1 is over: c1 offered to t2
    queue.session("s2", "u-jumper", now=at(3610))  # t2 loses c1 to a jumper
    queue.dispatch(C1, now=at(7200))  # s2 is over: c1 offered to t2 again
    assert queue.ticket("t2").status == "offered"
    assert queue.session("s1", "u1", now=at(7210)) == []  # a late second report of s1


# --- dispatch revocations --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        ("faulted", "connector_faulted"),
        ("unavailable", "connector_unavailable"),
        ("offline", "station_offline"),
    ],
)
@pytest.mark.parametrize("status", ["offered", "held"])
def test_an_offer_on_a_connector_that_went_away_is_revoked_and_the_ticket_goes_to_the_head(
    status: str, state: ConnectorState, reason: RevokeReason
) -> None:
    queue = queue_with_ticket_in(status)
    events = queue.dispatch(connector("c1", state=state), now=at(30))
    assert events == [
        OfferRevoked(ticket_id="t1", at=at(30), reason=reason, chargestation_id="st1", connector_id="c1")
    ]
    ticket = queue.ticket("t1")
    assert (ticket.status, ticket.offer, ticket.priority, ticket.reason) == ("waiting", None, True, reason)


def test_an_offer_on_a_connector_missing_from_the_site_is_revoked_as_gone() -> None:
    queue = held_queue()
    events = queue.dispatch(C2, now=at(30))
    revoked = [e for e in events if isinstance(e, OfferRevoked)]
    assert [(e.ticket_id, e.reason, e.session_id) for e in revoked] == [("t1", "connector_gone", None)]


@pytest.mark.parametrize("state", ["in_use", "unknown", "offerable"])
@pytest.mark.parametrize("status", ["offered", "held"])
def test_an_offer_on_a_connector_in_use_is_kept(status: str, state: ConnectorState) -> None:
    queue = queue_with_ticket_in(status)
    before = queue.ticket("t1")
    assert queue.dispatch(connector("c1", state=state), now=at(30)) == []
    assert queue.ticket("t1") == before


def test_a_revoked_ticket_is_offered_another_free_connector_ahead_of_the_line_in_the_same_dispatch() -> None:
    queue = Queue()
    queue.join("t0", types=["Type2"])  # first in line, but cannot use c1
    queue.join("t1")
    queue.dispatch(C1)
    type2 = connector("c2", type="Type2")
    events = queue.dispatch(connector("c1", state="faulted"), type2, now=at(30))
    assert [(type(e), e.ticket_id) for e in events if isinstance(e, OfferRevoked | TicketOffered)] == [
        (OfferRevoked, "t1"),
        (TicketOffered, "t1"),
    ]
    t1 = queue.ticket("t1")
    assert t1.offer is not None
    assert t1.offer.spot == "st1/c2"
    assert not t1.priority  # a new offer ends the priority


def test_revocations_happen_while_paused_but_no_new_offers_are_made() -> None:
    queue = offered_queue()
    queue.join("t2")
    queue.run(PauseQueue())
    events = queue.dispatch(connector("c1", state="faulted"), C2, now=at(5))
    assert [type(e) for e in events] == [OfferRevoked]


def test_dispatching_again_on_the_same_site_does_nothing() -> None:
    queue = offered_queue()
    queue.join("t2")
    queue.join("t3")
    site = (connector("c1", state="faulted"), C2, connector("c3"))
    assert queue.dispatch(*site, now=at(5)) != []
    assert queue.dispatch(*site, now=at(5)) == []


# --- pausing, resuming, policy ---------------------------------------------------------------------


def test_pausing_a_running_queue_pauses_it() -> None:
    queue = Queue()
    assert queue.run(PauseQueue()) == [QueuePaused(at=T0)]
    assert queue.state.policy.paused


def test_pausing_a_paused_queue_does_nothing() -> None:
    queue = Queue()
    queue.run(PauseQueue())
    assert queue.run(PauseQueue(), at(1)) == []


def test_resuming_a_paused_queue_resumes_it() -> None:
    queue = Queue()
    queue.run(PauseQueue())
    assert queue.run(ResumeQueue(), at(1)) == [QueueResumed(at=at(1))]
    assert not queue.state.policy.paused


def test_resuming_a_running_queue_does_nothing() -> None:
    assert Queue().run(ResumeQueue()) == []


def test_a_paused_queue_makes_no_offers_until_it_is_resumed() -> None:
    queue = Queue()
    queue.join("t1")
    queue.run(PauseQueue())
    assert queue.dispatch(C1, now=at(1)) == []
    queue.run(ResumeQueue(), at(2))
    assert [type(e) for e in queue.dispatch(C1, now=at(3))] == [TicketOffered]


def test_setting_the_policy_changes_only_the_fields_given() -> None:
    queue = Queue()
    events = queue.run(SetQueuePolicy(respond_within_s=60, max_snoozes=5))
    assert events == [QueuePolicySet(at=T0, policy=Policy(respond_within_s=60, max_snoozes=5))]
    assert queue.state.policy == Policy(respond_within_s=60, max_snoozes=5)


def test_setting_the_policy_to_what_it_is_does_nothing() -> None:
    queue = Queue(Policy(max_queue_length=10))
    assert queue.run(SetQueuePolicy(max_queue_length=10, respond_within_s=RESPOND_S)) == []
    assert queue.run(SetQueuePolicy()) == []


def test_setting_the_policy_can_pause_the_queue() -> None:
    queue = Queue()
    queue.join("t1")
    queue.run(SetQueuePolicy(paused=True))
    assert queue.state.policy.paused
    assert queue.dispatch(C1) == []


def test_a_new_response_window_applies_to_later_offers_only() -> None:
    queue = offered_queue()
    queue.join("t2")
    queue.run(SetQueuePolicy(respond_within_s=60, plug_in_within_s=120), at(1))
    (offer,) = queue.dispatch(C1, C2, now=at(2))
    assert isinstance(offer, TicketOffered)
    assert offer.respond_by == at(62)
    t1_offer = queue.ticket("t1").offer
    assert t1_offer is not None
    assert t1_offer.respond_by == at(RESPOND_S)
    (accepted,) = queue.run(AcceptOffer(ticket_id="t2"), at(3))
    assert isinstance(accepted, OfferAccepted)
    assert accepted.hold_until == at(123)


# --- versions --------------------------------------------------------------------------------------


def test_the_state_version_counts_every_event_and_a_ticket_version_its_own() -> None:
    queue = held_queue()  # joined, offered, accepted
    queue.join("t2")
    queue.run(PauseQueue())
    assert queue.state.version == len(queue.log) == 5
    assert queue.ticket("t1").version == 3
    assert queue.ticket("t1").updated_at == at(10)
    assert queue.ticket("t2").version == 1


def test_replaying_the_log_from_scratch_gives_the_same_state() -> None:
    queue = held_queue()
    queue.join("t2", edrv_user_id="u2")
    queue.session("s1", "u2", now=at(20))
    queue.run(SetQueuePolicy(max_snoozes=1), at(21))
    assert replay(LOCATION, queue.log) == queue.state


# --- events on the wire ----------------------------------------------------------------------------

ONE_OF_EACH: list[QueueEvent] = [
    TicketJoined(
        ticket_id="t1",
        at=T0,
        driver_id="d1",
        edrv_user_id="u1",
        requirements=requirements_of(["Type 2", "ccs2"], 11.5, ["st2", "st1"]),
        rank=7,
        idempotency_key="k1",
    ),
    TicketJoined(
        ticket_id="t2",
        at=T0,
        driver_id="d2",
        edrv_user_id=None,
        requirements=requirements_of(None, None, None),
        rank=8,
    ),
    TicketOffered(ticket_id="t1", at=T0, chargestation_id="st1", connector_id="c1", respond_by=at(180)),
    OfferAccepted(ticket_id="t1", at=at(1), hold_until=at(601)),
    OfferSnoozed(ticket_id="t1", at=at(2), by="driver", snoozed_until=at(182)),
    OfferSnoozed(ticket_id="t1", at=at(2), by="no_answer", snoozed_until=at(182)),
    SnoozeEnded(ticket_id="t1", at=at(3)),
    OfferRevoked(
        ticket_id="t1", at=at(4), reason="station_offline", chargestation_id="st1", connector_id="c1"
    ),
    OfferRevoked(
        ticket_id="t1",
        at=at(4),
        reason="queue_jumper",
        chargestation_id="st1",
        connector_id="c1",
        session_id="s9",
    ),
    TicketFulfilled(
        ticket_id="t1", at=at(5), session_id="s1", chargestation_id="st1", connector_id="c1", jumped=True
    ),
    TicketNoShow(ticket_id="t1", at=at(6)),
    TicketCancelled(ticket_id="t1", at=at(7)),
    TicketRemoved(ticket_id="t1", at=at(8), reason="no_answer_too_often", by="policy"),
    QueuePolicySet(
        at=at(9), policy=Policy(respond_within_s=60, plug_in_within_s=300, max_snoozes=0, paused=True)
    ),
    QueuePaused(at=at(10)),
    QueueResumed(at=at(11)),
]


def test_the_round_trip_examples_cover_every_event_class() -> None:
    assert {type(e) for e in ONE_OF_EACH} == set(EVENT_CLASSES.values())


@pytest.mark.parametrize("event", ONE_OF_EACH, ids=lambda e: f"{e.TYPE}")
def test_every_event_survives_encoding_and_decoding(event: QueueEvent) -> None:
    decoded = decode_event(event.TYPE, encode_event(event))
    assert type(decoded) is type(event)
    assert decoded == event
    assert decoded.at.tzinfo is not None
    assert decode_event(event.TYPE, encode_event(event).decode()) == event


def test_decoding_an_unknown_event_type_raises_key_error() -> None:
    with pytest.raises(KeyError):
        decode_event("ticket.teleported", b"{}")


def test_decoding_bad_event_data_raises_a_decode_error() -> None:
    with pytest.raises(msgspec.DecodeError):
        decode_event(TicketCancelled.TYPE, b'{"ticket_id": "t1"}')
    with pytest.raises(msgspec.DecodeError):
        decode_event(TicketCancelled.TYPE, b"not json")
