"""Run the demo: the simulated service writes while the real log collector ingests, then
the real scoring worker scores a sample of what was stored."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from diffwatch.collectors.logs.collector import CollectSummary, LogCollector
from diffwatch.db.queries import demo as demo_sql
from diffwatch.db.queries import explorer as explorer_sql
from diffwatch.db.queries import review as review_sql
from diffwatch.db.queries import rollups
from diffwatch.demo import store
from diffwatch.demo.accounts import (
    CREDENTIALS_FILE,
    DemoAccount,
    ensure_accounts,
    write_credentials,
)
from diffwatch.demo.alerts import DEFAULT_TO, AlertsReport, run_demo_alerts
from diffwatch.demo.drift import DriftDemoOptions, run_demo_drift
from diffwatch.demo.files import log_glob
from diffwatch.demo.fleet import SOURCE, build_fleet
from diffwatch.demo.raters import (
    DEMO_RATERS,
    ItemFeatures,
    rater_rng,
    rating_time,
    simulate_rating,
)
from diffwatch.demo.scoring import ScoreOptions, ScoringReport, load_scorers, score_demo
from diffwatch.demo.service import (
    ServiceStats,
    SimulatedService,
    minute_of,
    minutes_to_simulate,
)
from diffwatch.demo.traffic import MODEL, Minute, Trend
from diffwatch.demo.truth import SceneTruth
from diffwatch.model.review_policy import ReviewPolicy

COLLECT_POLL_S = 0.2  # pause between collector passes while the service writes (s)
# The review queue sized for the demo's default scored sample (1,200 images, the versions
# taking turns): about 160 items, 30 % of them to be rated twice so agreement has overlap,
# and over the 50 rated images a version that the Model versions page needs to compare the
# human ratings (60 random a version, with the canary, low-CLIP and NSFW-flagged picks).
DEMO_REVIEW_POLICY = ReviewPolicy(
    random_per_version=60,
    low_clip_quantile=0.1,
    low_clip_max=20,
    nsfw_flagged_max=15,
    canary_max=20,
    k2_share=0.3,
)
LEAVE_OPEN = 15  # items left unrated so a rater logging in has work (at most a quarter)
RATER1_TURNS = 3  # rater1 takes 3 of every 5 turns: their throughputs differ
LEASE_S = 120.0
# The trending topic climbs over the last 6 hours, the current side of the demo's prompt
# drift check (a quarter of the window): by the end half of the prompts ask for it.
TREND_RAMP_MIN = 360


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
    review: bool = True  # demo accounts and simulated ratings (False: skip both)
    alerts: bool = True  # demo alert rules, a replay of their evaluation, real emails
    alert_to: str = DEFAULT_TO  # recipient of the demo's alert emails
    trend: bool = True  # a topic climbing over the window's last hours (prompt drift finds it)


@dataclass
class Progress:
    """Callbacks for a progress display (each may be called from another thread)."""

    start: Callable[[int, int], None] = lambda minutes, pending_bytes: None
    minute: Callable[[Minute, int], None] = lambda minute, bytes_written: None
    ingested: Callable[[int], None] = lambda nbytes: None
    train: Callable[[int, int, float], None] | None = None  # demo CLIP (step, steps, loss)
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
    accounts: list[DemoAccount] = field(default_factory=list)  # with plain-text passwords
    credentials_file: str | None = None
    review: ReviewReport | None = None
    alerts: AlertsReport | None = None
    elapsed_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (counts, ISO times, seconds); passwords only in the file."""
        d = asdict(self)
        d["collected"] = self.collected.as_dict()
        d["accounts"] = [
            {"username": a.username, "role": a.role, "created": a.created} for a in self.accounts
        ]
        d["elapsed_s"] = round(self.elapsed_s, 2)
        return d


@dataclass
class ReviewReport:
    """The demo's review step: items queued per reason, simulated ratings, what is left."""

    queued: dict[str, int]  # items that newly carry each reason
    ratings: int  # ratings stored by this run
    by_rater: dict[str, int]
    skips: int
    two_raters: int  # items that got their second rating in this run
    open_items: int  # items still waiting for a rating (in the whole queue)
    truth: int  # rated items whose ground truth (on-prompt or garbled) the raters knew
    elapsed_s: float = 0.0


def _iso(minute: int) -> str:
    return datetime.fromtimestamp(minute * 60, UTC).isoformat()


def run_demo(conninfo: str, opts: DemoOptions, progress: Progress | None = None) -> DemoResult:
    """Simulate the minutes of the window not stored yet, ingest them, score a sample, count.

    Scorers load first, so a CLIP checkpoint that does not load fails before any work.
    """
    t0 = time.perf_counter()
    progress = progress or Progress()
    loaded = load_scorers(opts.score, progress.train) if opts.score else None
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
            trend=Trend(peak=end, ramp_min=min(TREND_RAMP_MIN, end - start))
            if opts.trend
            else None,
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
            conninfo,
            loaded,
            opts.score.limit,
            progress.score_start,
            progress.scored,
            images_dir=opts.out / "images",
            order=opts.score.order,
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
    accounts: list[DemoAccount] = []
    credentials = review = None
    if opts.review:
        accounts, credentials, review = run_demo_review(
            conninfo,
            opts.out,
            datetime.fromtimestamp(end * 60, UTC),
            opts.hours,
            opts.seed,
            opts.rate,
        )
    with psycopg.connect(conninfo) as conn:
        # The dashboard reads rollups only: bring them up to date with what was stored.
        rolled = rollups.refresh(conn).rows
    alerts = None
    if opts.alerts:
        # A window ending now replays up to the present, so the ratings just made count.
        wall, window_end = datetime.now(UTC), datetime.fromtimestamp(end * 60, UTC)
        replay_end = wall if wall - window_end < timedelta(minutes=5) else window_end
        alerts = run_demo_alerts(conninfo, opts.out, replay_end, opts.alert_to)
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
        accounts=accounts,
        credentials_file=str(credentials) if credentials else None,
        review=review,
        alerts=alerts,
        elapsed_s=time.perf_counter() - t0,
        notes=notes,
    )


def run_demo_review(
    conninfo: str,
    out: Path,
    end: datetime,
    hours: float,
    seed: int,
    rate: float,
    policy: ReviewPolicy = DEMO_REVIEW_POLICY,
    leave_open: int = LEAVE_OPEN,
) -> tuple[list[DemoAccount], Path, ReviewReport]:
    """Create the demo accounts, queue scored generations for review, simulate two raters.

    The accounts get new passwords, written to ``out``/credentials.txt (0600). Items of the
    ``hours`` before ``end`` are queued by ``policy``; the simulated raters, who know what
    each image shows (the simulation of ``seed`` at ``rate``), claim and rate them through
    the real queue (leases, K, audit log) until ``leave_open`` items are left
    open (at most a quarter of the open items).
    """
    t0 = time.perf_counter()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        accounts = ensure_accounts(conn)
        credentials = write_credentials(out / CREDENTIALS_FILE, accounts)
        ids = {a.username: a.user_id for a in accounts}
        queued = review_sql.enqueue(conn, replace(policy, window_h=hours), end)
        open_now = review_sql.queue_stats(conn).open_items
        keep = min(leave_open, open_now // 4)
        report = ReviewReport(queued, 0, {r.username: 0 for r in DEMO_RATERS}, 0, 0, 0, 0)
        truth = SceneTruth(seed, rate)
        seen: dict[int, ItemFeatures] = {}
        generated_at: dict[int, datetime] = {}
        done: set[str] = set()  # raters with nothing left to claim
        turn = 0
        while open_now > keep and len(done) < len(DEMO_RATERS):
            rater = DEMO_RATERS[0 if turn % 5 < RATER1_TURNS else 1]
            turn += 1
            if rater.username in done:
                rater = next(r for r in DEMO_RATERS if r.username not in done)
            name = rater.username
            item = review_sql.claim_next(conn, name, ids[name], LEASE_S)
            if item is None:
                done.add(name)
                continue
            gid = item.generation_id
            if gid not in seen:
                seen[gid], generated_at[gid] = _features(conn, item, truth, end)
                report.truth += seen[gid].on_prompt is not None
            rating = simulate_rating(seen[gid], rater, rater_rng(seed, name, gid), seed)
            if rating is None:
                report.skips += review_sql.skip(conn, item.item_id, name)
                continue
            stored = review_sql.rate(
                conn,
                item.item_id,
                name,
                ids[name],
                rating.quality,
                rating.adherence,
                list(rating.flags),
                rating.comment,
                at=rating_time(seed, name, gid, generated_at[gid], end),
            )
            report.ratings += stored
            report.by_rater[name] += stored
            if item.n_ratings + 1 >= item.required_ratings:
                open_now -= 1
                report.two_raters += item.required_ratings > 1
        report.open_items = review_sql.queue_stats(conn).open_items
    report.elapsed_s = round(time.perf_counter() - t0, 2)
    return accounts, credentials, report


def _features(
    conn: psycopg.Connection, item: Any, truth: SceneTruth, end: datetime
) -> tuple[ItemFeatures, datetime]:
    """What a simulated rater sees of a claimed item (whether it shows its prompt's scene),
    and when the image was generated (``end`` if its generation is gone)."""
    detail = explorer_sql.generation_detail(conn, item.generation_id)
    g = detail.generation if detail else None
    features = ItemFeatures(
        generation_id=item.generation_id,
        on_prompt=truth.on_prompt(g.request_id, g.ts) if g else None,
        nsfw_flagged=item.nsfw_flagged,
        canary=bool(g and g.deployment == "canary"),
    )
    return features, g.ts if g else end


def _clip_of(loaded: Any) -> tuple[Any, str] | None:
    """(ClipScorer, label) of the demo's CLIP scorer when its weights loaded, else None."""
    for s in loaded.scorers if loaded else ():
        if s.key.scorer == "clip":
            from diffwatch.scoring.clip.scorer import ClipScorer

            if loaded.demo_clip is not None:
                return ClipScorer(s.inner.clip), loaded.demo_clip.label
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
