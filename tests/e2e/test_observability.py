"""An operator can follow one eDRV delivery end to end in the JSON logs (its webhook id, then its stream
and position, then the offer it caused), and /metrics counts webhooks, appends and queue outcomes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx

from service.api.drivers import mint_token
from service.simulate.edrv import Connector, Station, location_created
from tests.conftest import Db, empty_the_log
from tests.e2e.polling import until
from tests.e2e.server import Server

JWT = "e2e-jwt-secret-0123456789abcdef01"
LOCATION = "loc-logs"


async def _shows(http: httpx.AsyncClient, path: str, headers: dict[str, str], check: Any) -> None:
    async def answered() -> bool:
        response = await http.get(path, headers=headers)
        return response.status_code == 200 and bool(check(response.json()))

    await until(answered, path, timeout_s=20)


def _metric(text: str, name: str, **labels: str) -> float:
    selector = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(name + (f"{{{selector}}}" if labels else "")) + r" ([0-9.e+-]+)"
    found = re.search(pattern, text)
    assert found, f"{name} {labels} not in /metrics"
    return float(found.group(1))


async def test_json_logs_follow_a_delivery_to_the_offer_it_caused_and_metrics_count_it(
    database_url: str, db: Db, tmp_path: Path
) -> None:
    await empty_the_log(db)
    server = Server(
        tmp_path / "server",
        database_url=database_url,
        jwt_secret=JWT,
        log_format="json",
        log_deliveries="true",
    )
    server.start()
    driver = {"Authorization": f"Bearer {mint_token(JWT, 'dana')}"}
    station = Station("st-logs", LOCATION, [Connector("c1", "CCS2", 150, "Charging")])
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            for body in (location_created(LOCATION), station.online_body()):
                assert (await http.post("/webhooks/edrv", content=body)).status_code == 200
            await _shows(http, f"/v1/locations/{LOCATION}", {}, lambda site: site["chargestations"])
            joined = await http.post(f"/v1/locations/{LOCATION}/tickets", json={}, headers=driver)
            assert joined.status_code == 201, joined.text
            ticket_id = joined.json()["id"]
            freed = station.status("c1", "Available", delivery="hook-that-frees-c1")
            assert (await http.post("/webhooks/edrv", content=freed)).status_code == 200
            assert (await http.post("/webhooks/edrv", content=freed)).status_code == 200  # a redelivery
            assert (await http.post("/webhooks/edrv", content=b"{not json")).status_code == 400
            await _shows(http, f"/v1/tickets/{ticket_id}", driver, lambda t: t["status"] == "offered")
            metrics = (await http.get("/metrics")).text
    finally:
        output = server.stop()

    lines = [line for line in output.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"time", "level", "logger", "message"} <= record.keys() for record in records)
    stored = [r for r in records if r.get("webhook_id") == "hook-that-frees-c1"]
    assert [r["message"] for r in stored] == ["webhook stored", "webhook duplicate"]
    assert stored[0]["stream_id"] == "chargestation-st-logs"
    position = stored[0]["position"]
    assert stored[1]["position"] == position
    offers = [r for r in records if r["message"] == "ticket.offered" and r.get("ticket_id") == ticket_id]
    assert len(offers) == 1
    assert offers[0]["caused_by"] == position
    assert offers[0]["position"] > position
    assert offers[0]["stream_id"] == f"queue-{LOCATION}"

    assert _metric(metrics, "chargeline_webhooks_received_total", outcome="stored") >= 3
    assert _metric(metrics, "chargeline_webhooks_received_total", outcome="duplicate") >= 1
    assert _metric(metrics, "chargeline_webhooks_received_total", outcome="not_json") >= 1
    assert _metric(metrics, "chargeline_webhook_seconds_count") >= 5
    assert _metric(metrics, "chargeline_append_batch_size_count") >= 4
    assert _metric(metrics, "chargeline_queue_events_total", type="ticket.joined") == 1
    assert _metric(metrics, "chargeline_queue_events_total", type="ticket.offered") == 1
    assert _metric(metrics, "chargeline_projection_lag_events", projection="tickets") >= 0
    assert _metric(metrics, "chargeline_sse_subscribers") == 0
