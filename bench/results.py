"""What one ingest benchmark run records; written as JSON, read by people and by the smoke test."""

from __future__ import annotations

import os
import platform
import statistics
from datetime import datetime

import msgspec

from bench.database import PostgresInfo
from bench.load import Latency, LoadResult

P99_AT_HALF_RATE_LIMIT_MS = 25.0
# The ingest runs' defaults, (full, smoke), shared by ``bench ingest`` and ``bench growth``.
DURATION_S = (10, 1)
WARMUP_S = (2, 0)
ROUNDS = (3, 1)
CONNECTIONS = (32, 8)


class Machine(msgspec.Struct, frozen=True, kw_only=True):
    cpu_count: int | None
    cpu_model: str | None
    platform: str
    python: str


class RunSettings(msgspec.Struct, kw_only=True):
    smoke: bool
    duration_s: int
    warmup_s: int
    rounds: int
    connections: int
    pg_settings: dict[str, str] = msgspec.field(default_factory=dict)  # --pg-set: scratch database defaults
    load_generator: str = ""


class Run(msgspec.Struct, frozen=True, kw_only=True):
    app: str  # "baseline" or "chargeline"
    kind: str  # "warmup", "max" (closed loop) or "half_rate" (paced)
    round: int
    target_rps: float | None  # the paced rate; None for closed loop
    stored: int  # rows the app's table grew by: must match the completed requests
    load: LoadResult


class Figures(msgspec.Struct, frozen=True, kw_only=True):
    """Medians over the closed-loop rounds of one app, and each round's throughput in order: a trend
    across rounds means the app slows down as the log grows (or warms up), which a median hides."""

    rps: float
    latency_ms: Latency
    rps_by_round: list[float]


class Ratios(msgspec.Struct, frozen=True, kw_only=True):
    """Chargeline / baseline: throughput below 1 is slower; latency above 1 is slower."""

    throughput: float
    p50: float
    p90: float
    p99: float


class HalfRate(msgspec.Struct, frozen=True, kw_only=True):
    """Chargeline paced at half its median max rate, and the baseline paced at the same rate as a
    control: a tail both share comes from the machine, not from Chargeline."""

    target_rps: float
    achieved_rps: float
    latency_ms: Latency
    baseline_achieved_rps: float
    baseline_latency_ms: Latency


class Target(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    limit: float
    value: float
    unit: str
    passed: bool | None  # None: not evaluated (smoke runs are too short to mean anything)


class Results(msgspec.Struct, kw_only=True):
    benchmark: str = "ingest"
    started_at: datetime
    finished_at: datetime | None = None
    ok: bool = False
    error: str | None = None
    machine: Machine
    settings: RunSettings
    postgres: PostgresInfo | None = None
    runs: list[Run] = msgspec.field(default_factory=list)
    baseline: Figures | None = None
    chargeline: Figures | None = None
    ratios: Ratios | None = None
    half_rate: HalfRate | None = None
    targets: list[Target] = msgspec.field(default_factory=list)

    def summarise_max_rounds(self) -> None:
        self.baseline = median_figures([r.load for r in self.runs if r.app == "baseline" and r.kind == "max"])
        self.chargeline = median_figures(
            [r.load for r in self.runs if r.app == "chargeline" and r.kind == "max"]
        )
        base, line = self.baseline.latency_ms, self.chargeline.latency_ms
        self.ratios = Ratios(
            throughput=self.chargeline.rps / self.baseline.rps,
            p50=line.p50 / base.p50,
            p90=line.p90 / base.p90,
            p99=line.p99 / base.p99,
        )

    def record_half_rate(self, run: Run, baseline: Run) -> None:
        assert run.target_rps is not None
        self.half_rate = HalfRate(
            target_rps=run.target_rps,
            achieved_rps=run.load.rps,
            latency_ms=run.load.latency_ms,
            baseline_achieved_rps=baseline.load.rps,
            baseline_latency_ms=baseline.load.latency_ms,
        )
        value = run.load.latency_ms.p99
        self.targets.append(
            Target(
                name="chargeline p99 latency at half its max rate",
                limit=P99_AT_HALF_RATE_LIMIT_MS,
                value=value,
                unit="ms",
                passed=None if self.settings.smoke else value <= P99_AT_HALF_RATE_LIMIT_MS,
            )
        )


def median_figures(loads: list[LoadResult]) -> Figures:
    """Medians over the runs' loads, and each run's throughput in order."""
    latencies = [load.latency_ms for load in loads]
    return Figures(
        rps=statistics.median(load.rps for load in loads),
        latency_ms=Latency(
            p50=statistics.median(latency.p50 for latency in latencies),
            p90=statistics.median(latency.p90 for latency in latencies),
            p99=statistics.median(latency.p99 for latency in latencies),
            max=statistics.median(latency.max for latency in latencies),
        ),
        rps_by_round=[round(load.rps, 1) for load in loads],
    )


def machine() -> Machine:
    return Machine(
        cpu_count=os.cpu_count(),
        cpu_model=_cpu_model(),
        platform=platform.platform(),
        python=platform.python_version(),
    )


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None
