"""Properties of the queue under random traffic: whatever drivers, operators, stations and the clock do,
in any order, the queue's state stays consistent and fair.

A small site (two stations, four connectors of mixed types and power) and up to six drivers; every
command goes through ``decide`` and its events through ``replay``, exactly as the service applies them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import cast

from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

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
    OfferAccepted,
    OfferRevoked,
    OfferSnoozed,
    QueueEvent,
    QueuePaused,
    QueueResumed,
    SnoozeEnded,
    TicketCancelled,
    TicketEvent,
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
    QueueState,
    Requirements,
    SiteConnector,
    requirements_of,
)

T0 = datetime(2024, 5, 3, 8, 0, tzinfo=UTC)
LOCATION = "6601aa00000000000000001a"
TERMINAL = (TicketFulfilled, TicketNoShow, TicketCancelled, TicketRemoved)
REVOKED_BY: dict[str, str] = {
    "missing": "connector_gone",
    "faulted": "connector_faulted",
    "unavailable": "connector_unavailable",
    "offline": "station_offline",
}

# (station, connector, type as the station spells it, power)
SITE: list[tuple[str, str, str | None, float | None]] = [
    ("st1", "c1", "CCS2", 150.0),
    ("st1", "c2", "Type2", 22.0),
    ("st2", "c1", "TYPE_2", 11.0),
    ("st2", "c2", "CHAdeMO", 50.0),
]

connector_states = st.sampled_from(
    ["offerable", "offerable", "in_use", "in_use", "faulted", "unavailable", "offline", "unknown", "missing"]
)
requirements = st.builds(
    requirements_of,
    st.one_of(
        st.none(), st.lists(st.sampled_from(["CCS2", "Type2", "type 2", "TYPE_2", "CHAdeMO"]), max_size=2)
    ),
    st.sampled_from([None, None, 11.0, 22.0, 50.0, 100.0]),
    st.sampled_from([None, None, ["st1"], ["st2"], ["st1", "st2"]]),
)


def site_of(states: list[str]) -> tuple[SiteConnector, ...]:
    """The site's connectors in these states; ``missing`` leaves a connector out altogether."""
    return tuple(
        SiteConnector(
            chargestation_id=station,
            connector_id=cid,
            type=kind,
            power_kw=kw,
            state=cast(ConnectorState, state),
        )
        for (station, cid, kind, kw), state in zip(SITE, states, strict=True)
        if state != "missing"
    )


class QueueMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.state = QueueState(location_id=LOCATION)
        self.log: list[QueueEvent] = []
        self.now = T0
        self.joined: list[str] = []
        self.ranks: dict[str, int] = {}
        self.ended: set[str] = set()
        self.sessions = 0
        self.site = ["offerable"] * len(SITE)
        self.acted_on: dict[str, RecordSessionStart] = {}
        # Short windows and a short line, so deadlines, snooze limits and a full queue all come up.
        policy = SetQueuePolicy(respond_within_s=120, plug_in_within_s=300, max_snoozes=1, max_queue_length=5)
        self.apply(decide(self.state, policy, T0))

    # --- plumbing ----------------------------------------------------------------------------------

    def apply(self, events: list[QueueEvent]) -> None:
        for event in events:
            assert decode_event(event.TYPE, encode_event(event)) == event
            if isinstance(event, TicketJoined):
                self.joined.append(event.ticket_id)
                self.ranks[event.ticket_id] = event.rank
            if isinstance(event, TERMINAL):
                self.ended.add(event.ticket_id)
        self.state = replay(LOCATION, events, self.state)
        self.log += events

    def attempt(self, command: Command) -> list[QueueEvent] | Rejected:
        before = self.state
        try:
            events = decide(self.state, command, self.now)
        except Rejected as refused:
            assert self.state == before
            return refused
        self.apply(events)
        return events

    def pick(self, n: int) -> str:
        """A ticket: mostly one with an offer or at least live, sometimes one that ended or never was."""
        live = self.state.line()
        with_offer = [t for t in live if t.offer is not None]
        if n < 40 and with_offer:
            return with_offer[n % len(with_offer)].id
        if n < 70 and live:
            return live[n % len(live)].id
        if n < 95 and self.joined:
            return self.joined[n % len(self.joined)]
        return "never-joined"

    # --- drivers -----------------------------------------------------------------------------------

    @initialize(line=st.lists(requirements, min_size=1, max_size=4))
    def drivers_queue_up(self, line: list[Requirements]) -> None:
        for n, wants in enumerate(line, start=1):
            self.join(n, n % 2 == 1, wants)

    @rule(driver=st.integers(1, 6), with_edrv_user=st.booleans(), wants=requirements)
    def join(self, driver: int, with_edrv_user: bool, wants: Requirements) -> None:
        before = self.state
        command = JoinQueue(
            ticket_id=f"t{len(self.joined) + 1}",
            driver_id=f"d{driver}",
            edrv_user_id=f"u{driver}" if with_edrv_user else None,
            requirements=wants,
        )
        outcome = self.attempt(command)
        if before.ticket_of_driver(command.driver_id) is not None:
            assert isinstance(outcome, Rejected)
            assert outcome.code == "already-queued"
        elif len(before.tickets) >= before.policy.max_queue_length:
            assert isinstance(outcome, Rejected)
            assert outcome.code == "queue-full"
        else:
            assert not isinstance(outcome, Rejected)
            (joined,) = outcome
            assert isinstance(joined, TicketJoined)
            assert all(
                joined.rank > rank for ticket_id, rank in self.ranks.items() if ticket_id != joined.ticket_id
            )
            assert self.state.tickets[joined.ticket_id].status == "waiting"

    @rule(n=st.integers(0, 100))
    def accept(self, n: int) -> None:
        ticket = self.state.tickets.get(self.pick(n))
        outcome = self.attempt(AcceptOffer(ticket_id=self.pick(n)))
        if ticket is None:
            assert isinstance(outcome, Rejected)
            assert outcome.code == "ticket-ended"
        elif ticket.status != "offered" or ticket.offer is None:
            assert isinstance(outcome, Rejected)
            assert outcome.code == "not-offered"
        elif self.now >= ticket.offer.respond_by:
            assert isinstance(outcome, Rejected)
            assert outcome.code == "offer-expired"
        else:
            assert not isinstance(outcome, Rejected)
            assert [type(e) for e in outcome] == [OfferAccepted]
            assert self.state.tickets[ticket.id].status == "held"

    @rule(n=st.integers(0, 100))
    def snooze(self, n: int) -> None:
        ticket = self.state.tickets.get(self.pick(n))
        policy = self.state.policy
        outcome = self.attempt(SnoozeOffer(ticket_id=self.pick(n)))
        if ticket is None:
            assert isinstance(outcome, Rejected)
            assert outcome.code == "ticket-ended"
        elif ticket.status != "offered" or ticket.offer is None:
            assert isinstance(outcome, Rejected)
            assert outcome.code == "not-offered"
        elif self.now >= ticket.offer.respond_by:
            assert isinstance(outcome, Rejected)
            assert outcome.code == "offer-expired"
        elif ticket.snoozes_used >= policy.max_snoozes:
            assert outcome == [
                TicketRemoved(ticket_id=ticket.id, at=self.now, reason="snoozed_too_often", by="policy")
            ]
        else:
            assert not isinstance(outcome, Rejected)
            assert [type(e) for e in outcome] == [OfferSnoozed]
            after = self.state.tickets[ticket.id]
            assert (after.status, after.rank, after.snoozes_used) == (
                "waiting",
                ticket.rank,
                ticket.snoozes_used + 1,
            )

    @rule(n=st.integers(0, 100), by_operator=st.booleans())
    def ticket_ends(self, n: int, by_operator: bool) -> None:
        """The driver leaves (idempotent), or an operator removes the ticket (refused once it ended)."""
        ticket_id = self.pick(n)
        live = ticket_id in self.state.tickets
        if not by_operator:
            outcome = self.attempt(LeaveQueue(ticket_id=ticket_id))
            assert outcome == ([TicketCancelled(ticket_id=ticket_id, at=self.now)] if live else [])
            return
        outcome = self.attempt(RemoveTicket(ticket_id=ticket_id, reason="operator says so"))
        if live:
            assert outcome == [
                TicketRemoved(ticket_id=ticket_id, at=self.now, reason="operator says so", by="operator")
            ]
        else:
            assert isinstance(outcome, Rejected)
            assert outcome.code == "ticket-ended"

    # --- operators ---------------------------------------------------------------------------------

    @rule(pause=st.booleans())
    def pause_or_resume(self, pause: bool) -> None:
        was_paused = self.state.policy.paused
        if pause:
            assert self.attempt(PauseQueue()) == ([] if was_paused else [QueuePaused(at=self.now)])
        else:
            assert self.attempt(ResumeQueue()) == ([QueueResumed(at=self.now)] if was_paused else [])
        assert self.state.policy.paused == pause

    @rule(
        respond_within_s=st.sampled_from([None, 60, 120]),
        plug_in_within_s=st.sampled_from([None, 120, 300]),
        max_snoozes=st.sampled_from([None, 0, 1, 2]),
        max_queue_length=st.sampled_from([None, 2, 5]),
    )
    def set_policy(
        self,
        respond_within_s: int | None,
        plug_in_within_s: int | None,
        max_snoozes: int | None,
        max_queue_length: int | None,
    ) -> None:
        before = self.state.policy
        command = SetQueuePolicy(
            respond_within_s=respond_within_s,
            plug_in_within_s=plug_in_within_s,
            max_snoozes=max_snoozes,
            max_queue_length=max_queue_length,
        )
        outcome = self.attempt(command)
        assert not isinstance(outcome, Rejected)
        assert (outcome == []) == (self.state.policy == before)

    # --- the clock ---------------------------------------------------------------------------------

    @rule(
        seconds=st.sampled_from([1, 30, 59, 60, 61, 119, 120, 121, 180, 300, 301, 900]),
        then_handle_deadlines=st.booleans(),
    )
    def time_passes(self, seconds: int, then_handle_deadlines: bool) -> None:
        self.now += timedelta(seconds=seconds)
        if then_handle_deadlines:
            self.handle_deadlines()

    @rule()
    def handle_deadlines(self) -> None:
        before = self.state
        due = {t.id: t for t in before.tickets.values() if t.deadline is not None and t.deadline <= self.now}
        outcome = self.attempt(HandleDeadlines())
        assert not isinstance(outcome, Rejected)
        acted_on = [e.ticket_id for e in outcome if isinstance(e, TicketEvent)]
        assert set(acted_on) == set(due)  # every due ticket, no other
        assert [e.at for e in outcome] == sorted(e.at for e in outcome)  # in the order they passed
        firsts: set[str] = set()
        for event in outcome:
            assert isinstance(event, TicketEvent)
            ticket = due[event.ticket_id]
            if event.ticket_id in firsts:
                # Acting late: the auto-snooze that followed the missed offer has passed as well.
                assert isinstance(event, SnoozeEnded)
                assert event.at <= self.now
                continue
            firsts.add(event.ticket_id)
            assert event.at == ticket.deadline
            expected = {
                "offered": (OfferSnoozed, TicketRemoved),
                "held": (TicketNoShow,),
                "waiting": (SnoozeEnded,),
            }[ticket.status]
            assert isinstance(event, expected)
        assert decide(self.state, HandleDeadlines(), self.now) == []  # deciding again: nothing left

    # --- the site ----------------------------------------------------------------------------------

    @rule(
        spot=st.integers(0, 2 * len(SITE) - 1),
        who=st.sampled_from(["in line", "stranger", "anonymous"]),
        n=st.integers(0, 100),
    )
    def session_starts(self, spot: int, who: str, n: int) -> None:
        offered_spots = sorted(t.offer.spot for t in self.state.tickets.values() if t.offer is not None)
        if spot >= len(SITE) and offered_spots:  # half the time: where someone holds an offer
            station, cid = offered_spots[spot % len(offered_spots)].split("/")
        else:
            station, cid, _, _ = SITE[spot % len(SITE)]
        users = sorted({t.edrv_user_id for t in self.state.tickets.values() if t.edrv_user_id})
        user = {"in line": users[n % len(users)] if users else "u-stranger", "stranger": "u-stranger"}.get(
            who
        )
        self.sessions += 1
        command = RecordSessionStart(
            session_id=f"s{self.sessions}", chargestation_id=station, connector_id=cid, edrv_user_id=user
        )
        before = self.state
        holder = before.holder_of(f"{station}/{cid}")
        mine = before.ticket_of_edrv_user(user) if user else None
        outcome = self.attempt(command)
        assert not isinstance(outcome, Rejected)
        expected: set[tuple[type[QueueEvent], str]] = set()
        if mine is not None:
            expected.add((TicketFulfilled, mine.id))
        if holder is not None and (mine is None or holder.id != mine.id):
            ends = TicketFulfilled if mine is None and holder.edrv_user_id is None else OfferRevoked
            expected.add((ends, holder.id))
        assert {(type(e), e.ticket_id) for e in outcome if isinstance(e, TicketEvent)} == expected
        for event in outcome:
            if isinstance(event, OfferRevoked):
                assert (event.reason, event.session_id) == ("queue_jumper", command.session_id)
                assert self.state.tickets[event.ticket_id].priority
            if isinstance(event, TicketFulfilled):
                jumper = mine is not None and event.ticket_id == mine.id
                assert event.jumped == (jumper and holder is not None and holder.id != event.ticket_id)
        assert decide(self.state, command, self.now) == []  # the same start reported again
        if outcome:
            self.acted_on[f"{station}/{cid}"] = command

    @precondition(lambda self: bool(self.acted_on))
    @rule(n=st.integers(0, len(SITE) - 1))
    def a_session_start_is_reported_again_later(self, n: int) -> None:
        """The last session that changed the line at a connector, reported again whatever happened since
        (a webhook redelivery, a dispatcher retry), changes nothing."""
        spots = sorted(self.acted_on)
        assert self.attempt(self.acted_on[spots[n % len(spots)]]) == []

    @rule(changes=st.lists(st.tuples(st.integers(0, len(SITE) - 1), connector_states), max_size=3))
    def dispatch(self, changes: list[tuple[int, str]]) -> None:
        """Some connectors change state (or vanish, or come back), then the queue dispatches."""
        for index, state in changes:
            self.site[index] = state
        connectors = site_of(self.site)
        by_spot = {c.spot: c for c in connectors}
        before = self.state
        outcome = self.attempt(Dispatch(connectors=connectors))
        assert not isinstance(outcome, Rejected)
        revoked = [e for e in outcome if isinstance(e, OfferRevoked)]
        offered = [e for e in outcome if isinstance(e, TicketOffered)]
        assert len(revoked) + len(offered) == len(outcome)

        # Offers are taken back exactly where the connector faulted, went away or went offline.
        should_lose: dict[str, str] = {}
        for ticket in before.tickets.values():
            if ticket.offer is not None:
                there = by_spot.get(ticket.offer.spot)
                if (now_is := "missing" if there is None else there.state) in REVOKED_BY:
                    should_lose[ticket.id] = REVOKED_BY[now_is]
        assert {e.ticket_id: e.reason for e in revoked} == should_lose

        # New offers: only when running, only free offerable connectors, each once, to eligible tickets.
        if before.policy.paused:
            assert offered == []
        after_revocations = replay(LOCATION, revoked, before)
        taken = {t.offer.spot for t in after_revocations.tickets.values() if t.offer is not None}
        free = {c.spot: c for c in connectors if c.state == "offerable" and c.spot not in taken}
        eligible = [t for t in after_revocations.line() if t.eligible_at(self.now)]
        got = {e.ticket_id: f"{e.chargestation_id}/{e.connector_id}" for e in offered}
        assert len(got) == len(offered) == len(set(got.values()))
        for ticket_id, spot in got.items():
            assert spot in free
            ticket = after_revocations.tickets[ticket_id]
            assert ticket.eligible_at(self.now)
            assert ticket.requirements.accepts(free[spot])

        # Line order: nobody is passed over for a connector they could use that went to someone behind.
        for i, earlier in enumerate(eligible):
            if earlier.id in got:
                continue
            for later in eligible[i + 1 :]:
                if later.id in got:
                    assert not earlier.requirements.accepts(free[got[later.id]])

        # Nothing wasted: no eligible ticket waits while a free connector it accepts stays unoffered.
        if not before.policy.paused:
            left = [c for spot, c in free.items() if spot not in got.values()]
            for ticket in eligible:
                if ticket.id not in got:
                    assert not any(ticket.requirements.accepts(c) for c in left)

        assert decide(self.state, Dispatch(connectors=connectors), self.now) == []

    # --- after every step --------------------------------------------------------------------------

    @invariant()
    def the_version_counts_the_events(self) -> None:
        assert self.state.version == len(self.log)

    @invariant()
    def replaying_the_log_from_scratch_gives_the_same_state(self) -> None:
        assert replay(LOCATION, self.log) == self.state

    @invariant()
    def offers_belong_to_offered_and_held_tickets_only(self) -> None:
        for ticket in self.state.tickets.values():
            assert ticket.live
            assert (ticket.offer is not None) == (ticket.status in ("offered", "held"))
            if ticket.offer is not None:
                assert (ticket.offer.hold_until is not None) == (ticket.status == "held")
                assert not ticket.priority
                assert ticket.snoozed_until is None

    @invariant()
    def a_connector_is_offered_to_one_ticket_at_most(self) -> None:
        spots = [t.offer.spot for t in self.state.tickets.values() if t.offer is not None]
        assert len(spots) == len(set(spots))

    @invariant()
    def a_driver_has_one_live_ticket_at_most(self) -> None:
        drivers = [t.driver_id for t in self.state.tickets.values()]
        assert len(drivers) == len(set(drivers))

    @invariant()
    def no_ticket_is_lost(self) -> None:
        live = set(self.state.tickets)
        assert live.isdisjoint(self.ended)
        assert live | self.ended == set(self.joined)

    @invariant()
    def ranks_never_change_and_keep_join_order(self) -> None:
        for ticket in self.state.tickets.values():
            assert ticket.rank == self.ranks[ticket.id]
        ranks = [self.ranks[ticket_id] for ticket_id in self.joined]
        assert ranks == sorted(ranks)
        assert len(ranks) == len(set(ranks))
        assert self.state.next_rank > max(ranks, default=0)
        line = self.state.line()
        assert [t.line_key() for t in line] == sorted(t.line_key() for t in line)
        waiting = [t.rank for t in line if t.status == "waiting" and not t.priority]
        assert waiting == sorted(waiting)


def test_random_traffic_keeps_the_queue_consistent_and_fair() -> None:
    run_state_machine_as_test(
        QueueMachine, settings=settings(max_examples=200, stateful_step_count=60, deadline=None)
    )


# --- the best possible choice of connectors --------------------------------------------------------


def earliest_servable(line: list[Requirements], connectors: list[SiteConnector]) -> set[int]:
    """The tickets (by position in line) that fair matching should serve: walking the line, each ticket is
    served if it and those already chosen can all be given different connectors they accept."""
    chosen: list[int] = []

    def can_serve(tickets: list[int]) -> bool:
        owner: dict[int, int] = {}  # connector index -> ticket

        def place(ticket: int, seen: set[int]) -> bool:
            for c, connector in enumerate(connectors):
                if c in seen or not line[ticket].accepts(connector):
                    continue
                seen.add(c)
                if c not in owner or place(owner[c], seen):
                    owner[c] = ticket
                    return True
            return False

        return all(place(ticket, set()) for ticket in tickets)

    for ticket in range(len(line)):
        if can_serve([*chosen, ticket]):
            chosen.append(ticket)
    return set(chosen)


@settings(max_examples=200, deadline=None)
@example(
    wants=[
        requirements_of(["CCS2", "Type2"], None, None),
        requirements_of(["Type2"], None, None),
        requirements_of(["CCS2"], None, None),
        requirements_of(["CCS2"], None, None),
    ],
    states=["offerable", "offerable", "in_use", "in_use"],
)
@given(
    wants=st.lists(requirements, min_size=1, max_size=6),
    states=st.lists(st.sampled_from(["offerable", "in_use"]), min_size=len(SITE), max_size=len(SITE)),
)
def test_dispatch_serves_the_earliest_tickets_that_can_be_served_together(
    wants: list[Requirements], states: list[str]
) -> None:
    state = QueueState(location_id=LOCATION)
    for n, requirement in enumerate(wants):
        join = JoinQueue(ticket_id=f"t{n}", driver_id=f"d{n}", edrv_user_id=None, requirements=requirement)
        state = replay(LOCATION, decide(state, join, T0), state)
    connectors = site_of(states)
    events = decide(state, Dispatch(connectors=connectors), T0)
    served = {int(e.ticket_id[1:]) for e in events if isinstance(e, TicketOffered)}
    free = [c for c in connectors if c.state == "offerable"]
    assert served == earliest_servable(wants, free)
