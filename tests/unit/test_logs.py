"""Log lines carry their context (webhook id, stream, position) in both formats."""

from __future__ import annotations

import json
import logging
import sys

from service.logs import JsonFormatter, TextFormatter, Throttle


def _record(**extra: object) -> logging.LogRecord:
    record = logging.LogRecord(
        "service.edrv.intake", logging.INFO, __file__, 1, "webhook %s", ("stored",), None
    )
    record.__dict__.update(extra)
    return record


def test_json_lines_put_the_message_and_every_extra_in_one_object() -> None:
    line = JsonFormatter().format(_record(webhook_id="evt_1", stream_id="chargestation-st-1", position=42))
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["message"] == "webhook stored"
    assert (parsed["level"], parsed["logger"]) == ("INFO", "service.edrv.intake")
    assert (parsed["webhook_id"], parsed["stream_id"], parsed["position"]) == (
        "evt_1",
        "chargestation-st-1",
        42,
    )


def test_json_lines_keep_a_traceback_inside_the_object() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = _record()
        record.exc_info = sys.exc_info()
    parsed = json.loads(JsonFormatter().format(record))
    assert "RuntimeError: boom" in parsed["exception"]


def test_text_lines_append_the_extras_as_key_value_pairs() -> None:
    line = TextFormatter().format(_record(webhook_id="evt_1", position=42, caused_by=None))
    assert line.endswith("INFO service.edrv.intake: webhook stored webhook_id=evt_1 position=42")


def test_a_throttle_reports_once_per_interval_and_counts_what_it_held_back() -> None:
    now = [0.0]
    throttle = Throttle(5.0, clock=lambda: now[0])
    assert throttle.due() == 0  # the first report goes out at once
    assert [throttle.due() for _ in range(3)] == [None, None, None]
    now[0] = 4.9
    assert throttle.due() is None
    now[0] = 5.0
    assert throttle.due() == 4
    assert throttle.due() is None
