"""The ``sessions`` read model: the charging-session fold, one row per session."""

from __future__ import annotations

from typing import TYPE_CHECKING

from service.eventlog.model import RecordedEvent
from service.projections.sessions import SESSION_EVENTS, Money, SessionView, evolve_session
from service.projections.table import TableProjection

if TYPE_CHECKING:
    import asyncpg

    Connection = asyncpg.Connection[asyncpg.Record]

_COLUMNS = (
    "id, user_id, chargestation_id, connector_id, status, started_at, ended_at, energy_kwh, power_kw,"
    " soc_percent, cost_amount, cost_currency, updated_at"
)
_LOAD = f"SELECT {_COLUMNS} FROM sessions WHERE id = ANY($1::text[])"
_SAVE = f"""
    INSERT INTO sessions ({_COLUMNS}, position)
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[],
                         $7::timestamptz[], $8::float8[], $9::float8[], $10::float8[], $11::float8[],
                         $12::text[], $13::timestamptz[], $14::bigint[])
    ON CONFLICT (id) DO UPDATE SET
        user_id = excluded.user_id, chargestation_id = excluded.chargestation_id,
        connector_id = excluded.connector_id, status = excluded.status, started_at = excluded.started_at,
        ended_at = excluded.ended_at, energy_kwh = excluded.energy_kwh, power_kw = excluded.power_kw,
        soc_percent = excluded.soc_percent, cost_amount = excluded.cost_amount,
        cost_currency = excluded.cost_currency, updated_at = excluded.updated_at,
        position = excluded.position
"""


class SessionsProjection(TableProjection[SessionView]):
    name: str = "sessions"
    event_types: tuple[str, ...] | None = SESSION_EVENTS
    stream_prefix = "session-"
    tables = ("sessions",)

    def evolve(self, view: SessionView | None, event: RecordedEvent) -> SessionView | None:
        return evolve_session(view, event)

    async def load(self, connection: Connection, keys: list[str]) -> dict[str, SessionView]:
        return {row[0]: session_of(row) for row in await connection.fetch(_LOAD, keys)}

    async def save(self, connection: Connection, changed: list[tuple[SessionView, int]]) -> None:
        await connection.execute(
            _SAVE,
            [s.id for s, _ in changed],
            [s.user_id for s, _ in changed],
            [s.chargestation_id for s, _ in changed],
            [s.connector_id for s, _ in changed],
            [s.status for s, _ in changed],
            [s.started_at for s, _ in changed],
            [s.ended_at for s, _ in changed],
            [s.energy_kwh for s, _ in changed],
            [s.power_kw for s, _ in changed],
            [s.soc_percent for s, _ in changed],
            [s.cost.amount if s.cost else None for s, _ in changed],
            [s.cost.currency if s.cost else None for s, _ in changed],
            [s.updated_at for s, _ in changed],
            [position for _, position in changed],
        )


def session_of(row: asyncpg.Record) -> SessionView:
    cost = Money(row[10], row[11]) if row[10] is not None or row[11] is not None else None
    return SessionView(
        id=row[0],
        user_id=row[1],
        chargestation_id=row[2],
        connector_id=row[3],
        status=row[4],
        started_at=row[5],
        ended_at=row[6],
        energy_kwh=row[7],
        power_kw=row[8],
        soc_percent=row[9],
        cost=cost,
        updated_at=row[12],
    )
