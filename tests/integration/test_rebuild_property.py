"""Property: for any traffic eDRV could send, in any order, rebuilding by replay equals the live folds."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.edrv.intake import EdrvIntake
from service.eventlog.store import EventStore
from service.projections.catalog import PROJECTIONS
from service.projections.rebuild import rebuild
from tests.conftest import Db, empty_the_log
from tests.integration.test_rebuild import catch_up, content_hashes

T0 = datetime(2024, 5, 3, 8, tzinfo=UTC)
STATUSES = [
    "Available",
    "Preparing",
    "Charging",
    "SuspendedEV",
    "Finishing",
    "Faulted",
    "Unavailable",
    "Occupied",
]

times = st.integers(0, 7200).map(lambda s: (T0 + timedelta(seconds=s)).isoformat().replace("+00:00", "Z"))
connector = st.fixed_dictionaries(
    {"_id": st.sampled_from(["k1", "k2", "k3"]), "status": st.sampled_from(STATUSES), "updatedAt": times},
    optional={
        "type": st.sampled_from(["CCS2", "Type2", "CHADEMO"]),
        "power": st.one_of(st.integers(3, 350), st.sampled_from(["22", "50.0"])),
        "active": st.booleans(),
        "format": st.sampled_from(["CABLE", "Socket", "cable"]),
    },
)
station_event = st.fixed_dictionaries(
    {
        "object": st.just("chargestation"),
        "type": st.sampled_from(
            ["chargestation.connector_status.updated", "chargestation.online", "chargestation.offline"]
        ),
        "data": st.fixed_dictionaries(
            {"_id": st.sampled_from(["st1", "st2"]), "updatedAt": times},
            optional={
                "online": st.booleans(),
                "active": st.booleans(),
                "location": st.sampled_from(["loc1", "loc2"]),
                "connectors": st.lists(connector, max_size=3),
            },
        ),
    }
)
session_event = st.fixed_dictionaries(
    {
        "object": st.just("session"),
        "type": st.sampled_from(["session.started", "session.updated", "session.ended", "session.cancelled"]),
        "data": st.fixed_dictionaries(
            {"_id": st.sampled_from(["se1", "se2"]), "updatedAt": times},
            optional={
                "status": st.sampled_from(["started", "Started", "ENDED", "created"]),
                "user": st.sampled_from(["u1", "u2"]),
                "metrics": st.fixed_dictionaries({"energyConsumed": st.integers(0, 60000)}),
                "energy_report": st.fixed_dictionaries(
                    {
                        "power": st.fixed_dictionaries(
                            {"value": st.sampled_from(["7.4", 11, 50.5]), "unit": st.just("kW")}
                        )
                    }
                ),
            },
        ),
    }
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(deliveries=st.lists(st.one_of(station_event, session_event), min_size=1, max_size=40))
async def test_live_projections_and_a_rebuild_agree_on_any_traffic(
    store: EventStore, db: Db, deliveries: list[dict[str, object]]
) -> None:
    await empty_the_log(db)  # each example starts from an empty log
    intake = EdrvIntake(store, secret=None, tolerance_s=300)
    for n, delivery in enumerate(deliveries):
        body = json.dumps({"_id": f"{n:024x}", **delivery}).encode()
        await intake.receive(body, signature=None, content_type="application/json")
    await catch_up(store)
    live = await content_hashes(db)
    for projection in PROJECTIONS.values():
        await rebuild(store, projection)
    assert await content_hashes(db) == live
