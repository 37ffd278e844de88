"""Run the demo: the simulated service writes while the real log collector ingests, then
the real scoring worker scores a sample of what was stored."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from collectors.logs.collector import CollectSummary, LogCollector
from db.queries import demo as demo_sql
from db.queries import rollups
from diffwatch.demo import store
from diffwatch.demo.drift import DriftDemoOptions, run_demo_drift
from diffwatch.demo.files import log_glob
from diffwatch.demo.fleet import SOURCE, build_fleet
from diffwatch.demo.scoring import ScoreOptions, ScoringReport, load_scorers, score_demo
from diffwatch.demo.service import (
    ServiceStats,
    SimulatedService,
    minute_of,
    minutes_to_simulate,
)
from diffwatch.demo.traffic import MODEL, Minute

COLLECT_POLL_S = 0.2  # pause between collector passes while the service writes (s)


@dataclass(frozen=True)
class DemoOptions:
    """What to simulate: ``hours`` of history ending at ``end``, ``rate`` requests/min."""

    out: Path
    hours: float = 24.0
    rate: float = 20.0
    seed: int = 0
    end: datetime | None = None  # default: now
    score: ScoreOptions | None = field(default_factory=ScoreOptions)  # None: no scoring
    drift: DriftDemoOptions | None = field(default_factory=DriftDemoOptions)  # None: skip


@dataclass
class Progress:
    """Callbacks for a progress display (each may be called from another thread)."""

    start: Callable[[int, int], None] = lambda minutes, pending_bytes: None
    minute: Callable[[Minute, int], None] = lambda minute, bytes_written: None
    ingested: Callable[[int], None] = lambda nbytes: None
    score_start: Callable[[int], None] = lambda images: None
    scored: Callable[[int], None] = lambda images: None
    drift: Callable[[str, int, int], None] | None = None  # (stage, done, total)


@dataclass
class DemoResult:
    """What one demo run did and what the database holds afterwards."""

    out: str
    window_start: str
    window_end: str
    simulated_from: str | None
    simulated_to: str | None
    gpus: int
    service: ServiceStats
    collected: CollectSummary
    totals: demo_sql.Totals
    scoring: ScoringReport | None = None
    drift: dict[str, Any] | None = None
    rollups: dict[str, int] = field(default_factory=dict)  # raw rows rolled up, per table
    elapsed_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (counts, ISO times, seconds)."""
        d = asdict(self)
        d["collected"] = self.collected.as_dict()
        d["elapsed_s"] = round(self.elapsed_s, 2)
        return d


def _iso(minute: int) -> str:
    return datetime.fromtimestamp(minute * 60, UTC).isoformat()


def run_demo(conninfo: str, opts: DemoOptions, progress: Progress | None = None) -> DemoResult:
    """Simulate the minutes of the window not stored yet, ingest them, score a sample, count.

    Scorers load first, so a CLIP checkpoint that does not load fails before any work.
    """
    t0 = time.perf_counter()
    progress = progress or Progress()
    loaded = load_scorers(opts.score) if opts.score else None
    end = minute_of(opts.end or datetime.now(UTC))  # whole minutes: all in the past
    start = end - round(opts.hours * 60)
    opts.out.mkdir(parents=True, exist_ok=True)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        stored = demo_sql.stored_minutes(
            conn,
            SOURCE,
            datetime.fromtimestamp(start * 60, UTC),
            datetime.fromtimestamp(end * 60, UTC),
        )
        ranges = minutes_to_simulate(start, end, stored)
        fleet = build_fleet(opts.rate)
        service = SimulatedService(
            opts.out,
            opts.seed,
            opts.rate,
            fleet,
            store.GpuWriter(conn),
            on_minute=lambda m: progress.minute(m, service.log.bytes_written),
        )
        collector = LogCollector(
            conninfo, [log_glob(opts.out)], batch_rows=2000, name="demo", progress=progress.ingested
        )
        try:
            progress.start(sum(len(r) for r in ranges), collector.pending_bytes())
            collected = _run_alongside(service, collector, ranges)
        finally:
            collector.close()
        notes = []
        if stored:
            notes.append(
                f"the database already held {len(stored)} of the {end - start} minutes of "
                "this window; only the others were simulated"
            )
    scoring = None
    if loaded and opts.score:
        scoring = score_demo(
            conninfo, loaded, opts.score.limit, progress.score_start, progress.scored
        )
    drift = None
    if opts.drift:
        clip = _clip_of(loaded)
        drift = run_demo_drift(
            conninfo,
            opts.out,
            (datetime.fromtimestamp(start * 60, UTC), datetime.fromtimestamp(end * 60, UTC)),
            opts.drift,
            clip_scorer=clip[0] if clip else None,
            clip_label=clip[1] if clip else None,
            progress=progress.drift,
        )
    with psycopg.connect(conninfo) as conn:
        # The dashboard reads rollups only: bring them up to date with what was stored.
        rolled = rollups.refresh(conn, rollups.DEFAULT_MINUTE_RETENTION).rows
    with psycopg.connect(conninfo, autocommit=True) as conn:
        totals = demo_sql.totals(conn, MODEL, SOURCE)
    simulated = [m for r in ranges for m in (r[0], r[-1])]
    return DemoResult(
        out=str(opts.out),
        window_start=_iso(start),
        window_end=_iso(end),
        simulated_from=_iso(min(simulated)) if simulated else None,
        simulated_to=_iso(max(simulated) + 1) if simulated else None,
        gpus=len(fleet.slots),
        service=service.stats,
        collected=collected,
        totals=totals,
        scoring=scoring,
        drift=drift,
        rollups=rolled,
        elapsed_s=time.perf_counter() - t0,
        notes=notes,
    )


def _clip_of(loaded: Any) -> tuple[Any, str] | None:
    """(ClipScorer, label) of the demo's CLIP scorer when its weights loaded, else None."""
    for s in loaded.scorers if loaded else ():
        if s.key.scorer == "clip":
            from scoring.clip import ClipScorer

            return ClipScorer(s.inner.clip), s.key.version
    return None


def _run_alongside(
    service: SimulatedService, collector: LogCollector, ranges: list[range]
) -> CollectSummary:
    """Run the service in a thread and the collector here until both are done."""
    stop = threading.Event()
    failure: list[BaseException] = []

    def serve() -> None:
        try:
            service.run(ranges, stop)
        except BaseException as exc:  # handed to the main thread below
            failure.append(exc)

    thread = threading.Thread(target=serve, name="demo-service", daemon=True)
    total = CollectSummary()
    t0 = time.perf_counter()
    thread.start()
    try:
        while thread.is_alive():
            s = collector.run_once()
            total.add(s)
            if not s.bytes_read:
                thread.join(COLLECT_POLL_S)
    finally:
        stop.set()
        thread.join()
    if failure:
        raise failure[0]
    # The service has closed its files: read them to the end.
    while (s := collector.run_once()).bytes_read:
        total.add(s)
    total.add(s)
    total.elapsed_s = time.perf_counter() - t0
    return total
