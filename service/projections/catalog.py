"""Every read model the service keeps, by name."""

from __future__ import annotations

from typing import Any

from service.projections.availability_table import AvailabilityProjection
from service.projections.location_table import LocationsProjection
from service.projections.session_table import SessionsProjection
from service.projections.table import TableProjection
from service.projections.ticket_table import TicketsProjection

PROJECTIONS: dict[str, TableProjection[Any]] = {
    projection.name: projection
    for projection in (
        LocationsProjection(),
        AvailabilityProjection(),
        SessionsProjection(),
        TicketsProjection(),
    )
}
