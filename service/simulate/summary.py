"""What a simulation did, counted as it ran: printed as a table at the end, or written as JSON."""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field

from rich.console import Console
from rich.table import Table


@dataclass
class Summary:
    seed: int
    run: str
    speed: float
    webhooks: Counter[str] = field(default_factory=Counter)
    """Deliveries answered 2xx, by event type (redeliveries included)."""
    deliveries: Counter[str] = field(default_factory=Counter)
    """on_time, late, redelivered, retried, refused."""
    world: Counter[str] = field(default_factory=Counter)
    drivers: Counter[str] = field(default_factory=Counter)
    webhook_ms: list[float] = field(default_factory=list)
    """Round trip of each delivery answered 2xx."""
    waits_to_offer_s: list[float] = field(default_factory=list)
    waits_to_plug_in_s: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    """Refused webhooks and failed API calls: a healthy run has none."""
    error_count: int = 0
    real_s: float = 0.0

    def error(self, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < 100:  # enough to see what went wrong without flooding the terminal
            self.errors.append(message)

    def mean_minutes(self, waits: list[float]) -> float | None:
        """Mean wait in simulated minutes (the real seconds measured, times the speed)."""
        return round(statistics.fmean(waits) * self.speed / 60, 1) if waits else None

    def webhook_percentiles(self) -> dict[str, float] | None:
        if len(self.webhook_ms) < 2:
            return None
        cuts = statistics.quantiles(self.webhook_ms, n=100)
        return {"p50": round(cuts[49], 1), "p99": round(cuts[98], 1), "max": round(max(self.webhook_ms), 1)}

    def as_json(self) -> dict[str, object]:
        return {
            "seed": self.seed,
            "run": self.run,
            "speed": self.speed,
            "real_s": round(self.real_s, 1),
            "simulated_min": round(self.real_s * self.speed / 60, 1),
            "webhooks_sent": sum(self.webhooks.values()),
            "webhooks": dict(sorted(self.webhooks.items())),
            "deliveries": dict(self.deliveries),
            "world": dict(self.world),
            "drivers": dict(self.drivers),
            "webhook_ms": self.webhook_percentiles(),
            "mean_wait_to_offer_min": self.mean_minutes(self.waits_to_offer_s),
            "mean_wait_to_plug_in_min": self.mean_minutes(self.waits_to_plug_in_s),
            "error_count": self.error_count,
            "errors": self.errors,
        }

    def line(self, hour: float) -> str:
        """One progress line while it runs."""
        d = self.drivers
        return (
            f"{int(hour):02d}:{int(hour % 1 * 60):02d} simulated · {sum(self.webhooks.values())} webhooks · "
            f"{d['joined']} joined · {d['offers']} offers · {d['fulfilled']} plugged in · "
            f"{d['no_show']} no-shows · {self.world['queue_jumps']} queue jumps · {self.error_count} errors"
        )

    def print(self, console: Console) -> None:
        table = Table(title=f"Simulation (seed {self.seed}, {self.speed:g}x speed)", show_header=False)
        table.add_column(style="bold")
        table.add_column(justify="right")
        rows: list[tuple[str, object]] = [
            ("ran", f"{self.real_s:.0f} s real, {self.real_s * self.speed / 60:.0f} min simulated"),
            ("webhooks sent (2xx)", sum(self.webhooks.values())),
            *((f"  {kind}", n) for kind, n in sorted(self.webhooks.items())),
            *((f"  deliveries {kind}", n) for kind, n in sorted(self.deliveries.items())),
            ("  round trip p50 · p99 · max", _ms(self.webhook_percentiles())),
            ("walk-in sessions", self.world["walk_ins"]),
            ("faults · outages · flap bursts", _dots(self.world, "faults", "outages", "flaps")),
            ("drivers joined", self.drivers["joined"]),
            ("  offers · accepted · snoozed", _dots(self.drivers, "offers", "accepted", "snoozed")),
            ("  offers passed unanswered", self.drivers["unanswered"]),
            ("  plugged in (fulfilled)", self.drivers["fulfilled"]),
            ("  no-shows", self.drivers["no_show"]),
            ("  left the queue", self.drivers["left"]),
            ("  queue jumps · turned away", _dots(self.world, "queue_jumps", "drivers_turned_away")),
            ("  still queued at the end", self.drivers["still_queued"]),
            ("mean wait to an offer", _minutes(self.mean_minutes(self.waits_to_offer_s))),
            ("mean wait to plugging in", _minutes(self.mean_minutes(self.waits_to_plug_in_s))),
            ("errors", f"[red]{self.error_count}[/red]" if self.error_count else 0),
        ]  # fmt: skip
        for name, value in rows:
            table.add_row(name, str(value))
        console.print(table)
        for message in self.errors[:10]:
            console.print(f"[red]error[/red] {message}")


def _dots(counts: Counter[str], *names: str) -> str:
    return " · ".join(str(counts[name]) for name in names)


def _ms(cuts: dict[str, float] | None) -> str:
    return "-" if cuts is None else f"{cuts['p50']} · {cuts['p99']} · {cuts['max']} ms"


def _minutes(value: float | None) -> str:
    return "-" if value is None else f"{value} min simulated"
