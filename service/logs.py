"""Log lines as text for people, or as JSON lines (``CHARGELINE_LOG_FORMAT=json``) for log pipelines.

Context travels in ``extra``: ``log.info("webhook stored", extra={"webhook_id": ..., "position": ...})``.
Every extra field becomes a JSON member, so one delivery can be followed from intake (its webhook id,
stream and position) through the projections to the offer it caused (the same position).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Whatever a LogRecord carries by itself; anything else on it came in through ``extra``.
# (uvicorn adds ``color_message``, the message again with terminal colours.)
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}
_encode = msgspec.json.Encoder(enc_hook=repr).encode


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``message``, the extras, ``exception``."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in _extras(record):
            line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return _encode(line).decode()


class TextFormatter(logging.Formatter):
    """The plain format, with the extras appended as ``key=value`` so text logs carry them too."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = [f"{key}={value}" for key, value in _extras(record) if value is not None]
        if not extras:
            return text
        head, newline, rest = text.partition("\n")  # keep a traceback below the line
        return f"{head} {' '.join(extras)}{newline}{rest}"


def _extras(record: logging.LogRecord) -> list[tuple[str, Any]]:
    return [(k, v) for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")]


def formatter_config(log_format: LogFormat) -> dict[str, Any]:
    """A ``logging.config`` formatter entry for the chosen format."""
    return {"()": JsonFormatter if log_format == "json" else TextFormatter}


def configure_cli_logging(level: str, log_format: LogFormat) -> None:
    """Logging before the app takes over (migrations, the embedded server's start, CLI commands)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)


class Throttle:
    """At most one report per ``interval_s`` of a condition that repeats many times a second (a database
    outage under load), counting what it held back so the next report can say so."""

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval_s = interval_s
        self._clock = clock
        self._next = float("-inf")
        self._held = 0

    def due(self) -> int | None:
        """None: stay quiet. Otherwise report now; the number is how many reports were held back."""
        now = self._clock()
        if now < self._next:
            self._held += 1
            return None
        held, self._held, self._next = self._held, 0, now + self._interval_s
        return held
