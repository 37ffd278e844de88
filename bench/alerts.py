"""Alerts benchmark: rule evaluation and email delivery against their bare work.

Seeds a scratch database with ``--hours`` of synthetic generations ending now (8 versions,
stable/canary/shadow, 1.5 % errors; ``diffwatch/db/queries/synthetic.py``), CLIP and NSFW scores,
GPU samples and human ratings, and refreshes the rollups. Then:

1. Evaluation. ``--rules`` rules of mixed metrics, filters and windows (5m..6h), about one
   in ten breaching. ``--passes`` timed passes of ``diffwatch.alerts.evaluate.evaluate_all``
   (rollups
   not refreshed), the clock one minute later each pass; the baseline, interleaved with them
   at the same clock, is the metric queries alone (``alert_metrics.value`` for every rule on
   one new connection per pass, as ``evaluate_all`` opens). Then one pass over fresh rules
   that all breach, so every rule queues a firing email (series queries, chart PNG, HTML).
2. Delivery. ``--emails`` emails (bodies and charts of the firing pass) queued in the
   outbox and sent by ``diffwatch.alerts.deliver.deliver_due`` to an aiosmtpd sink on loopback; the
   baseline builds the same messages (``build_message``) and sends them with plain smtplib
   over one connection to the same sink. ``--rounds`` rounds, alternating which goes first.

Prints ONE JSON object on stdout; progress goes to stderr. Run ``python bench/alerts.py -h``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import smtplib
import socket
import statistics
import sys
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import smoke  # noqa: E402
from bench.ingest import DEFAULT_ADMIN_URL, progress, scratch_database  # noqa: E402
from diffwatch.db import migrate  # noqa: E402
from diffwatch.db.engine import raw_conninfo  # noqa: E402
from diffwatch.model.filters import DEFAULT_MINUTE_RETENTION  # noqa: E402

SCRATCH_DB = "diffwatch_bench_alerts"
DASHBOARD_URL = "http://dashboard.bench.localhost"
RECIPIENT = "oncall@bench.localhost"
SENDER = "diffwatch@bench.localhost"

# (metric, comparison, threshold that holds no alarm on the synthetic data)
METRIC_MIX = (
    ("error_rate", ">", 0.5),
    ("latency_p95_ms", ">", 600_000.0),
    ("cost_per_image_attributed", ">", 10.0),
    ("clip_mean", "<", 0.0),
    ("nsfw_rate", ">", 0.9),
    ("gpu_idle_share", ">", 0.99),
    ("human_rating_mean", "<", 0.5),
)
FLIP = {">": "<", "<": ">"}
FILTERS: tuple[dict[str, list[str]], ...] = (
    {},
    {"deployments": ["canary"]},
    {"models": ["sdxl-base-1.0"]},
    {"versions": ["2025-01-15"]},
    {"models": ["sd-v1-5"], "deployments": ["stable"]},
)
WINDOWS = ("5m", "15m", "30m", "1h", "3h", "6h")
FLEET_METRICS = {"gpu_idle_share", "cost_per_image_fleet"}

_RATINGS = """
INSERT INTO review_items (generation_id, reasons, required_ratings, n_ratings, created_at,
    done_at)
SELECT id, ARRAY['random'], 1, 1, ts, ts FROM generations WHERE status = 'ok' AND id % 20 = 0;
INSERT INTO review_ratings (item_id, rater_username, quality, adherence, rated_at)
SELECT i.id, 'rater' || (i.id % 7), 1 + (random() * 4)::int, 1 + (random() * 4)::int, g.ts
FROM review_items i JOIN generations g ON g.id = i.generation_id;
"""


def seed(conninfo: str, rows: int, hours: float, end: datetime) -> dict[str, Any]:
    """Generations, scores, GPU samples and ratings over ``hours`` before ``end``; counts."""
    from diffwatch.db.queries import rollups, synthetic

    t0 = time.perf_counter()
    with psycopg.connect(conninfo) as conn:
        synthetic.add_generations(conn, 0, rows, rows, end, hours / 24, "alerts")
        synthetic.add_scores(conn, 1)
        synthetic.add_gpu_samples(conn, end, 0, round(hours * 60))
        with conn.transaction():
            conn.execute(_RATINGS)
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        rollups.refresh(conn, DEFAULT_MINUTE_RETENTION)
        conn.execute("ANALYZE")
        counts = {
            t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # type: ignore[index]
            for t in ("generations", "scorer_results", "gpu_samples", "review_ratings")
        }
        errors = conn.execute("SELECT count(*) FROM generations WHERE status = 'error'")
        counts["generation_errors"] = errors.fetchone()[0]  # type: ignore[index]
    return counts | {"load_s": round(load_s, 1), "refresh_s": round(time.perf_counter() - t0, 1)}


def rule_specs(n: int, *, all_fire: bool, prefix: str) -> list[dict[str, Any]]:
    """``n`` rule documents cycling through metrics, filters and windows.

    Normal set: every tenth rule breaches, with no pending period: it fires in the warm-up
    pass and stays firing inside its repeat interval, so timed passes queue no email.
    The others hold, each with a pending period of 0, 5 or 15 minutes. ``all_fire``: every rule
    breaches (>= -1 holds for every metric, no data counts as a breach) with no pending
    period, so each one queues a firing email on its first evaluation.
    """
    out = []
    for i in range(n):
        metric, cmp, threshold = METRIC_MIX[i % len(METRIC_MIX)]
        scope = {} if metric in FLEET_METRICS else FILTERS[(i // len(METRIC_MIX)) % len(FILTERS)]
        doc: dict[str, Any] = {
            "name": f"{prefix} {i:03d} {metric}",
            "metric": metric,
            "window": WINDOWS[i % len(WINDOWS)],
            "comparison": cmp,
            "threshold": threshold,
            "for": ("0s", "5m", "15m")[i % 3],
            "repeat": "1h",
            "severity": ("info", "warning", "critical")[i % 3],
            "recipients": [RECIPIENT],
            **scope,
        }
        if all_fire:
            doc |= {"comparison": ">=", "threshold": -1.0, "for": "0s", "alert_on_no_data": True}
        elif i % 10 == 9:
            doc |= {"comparison": FLIP[cmp], "for": "0s"}
        out.append(doc)
    return out


def create_rules(conninfo: str, specs: Sequence[dict[str, Any]]) -> None:
    """Validate and store ``specs`` as rules."""
    from diffwatch.db.queries import alert_rules
    from diffwatch.model.alert_rules import Rule

    with psycopg.connect(conninfo) as conn:
        for doc in specs:
            alert_rules.create_rule(conn, Rule.model_validate(doc), "bench")
        conn.commit()


def metric_pass(conninfo: str, now: datetime) -> int:
    """Baseline: every enabled rule's metric value at ``now``, on one new connection."""
    from diffwatch.db.queries import alert_metrics
    from diffwatch.db.queries import alert_rules as q

    with psycopg.connect(conninfo) as conn:
        rules = q.list_rules(conn, enabled_only=True)
        for rule in rules:
            alert_metrics.value(conn, rule, now)
        conn.commit()
    return len(rules)


def _timed(fn: Any, *a: Any, **kw: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    got = fn(*a, **kw)
    return (time.perf_counter() - t0) * 1000, got


def evaluation(conninfo: str, args: argparse.Namespace, end: datetime) -> dict[str, Any]:
    """Steady passes vs metric queries alone, then one pass where every rule fires."""
    from diffwatch.alerts.evaluate import evaluate_all

    def run(now: datetime) -> Any:
        return evaluate_all(conninfo, now, dashboard_url=DASHBOARD_URL, refresh_rollups=False)

    create_rules(conninfo, rule_specs(args.rules, all_fire=False, prefix="steady"))
    start = end - timedelta(minutes=args.passes + 2)
    warm = run(start)  # first states, history rows and the breaching rules' emails
    metric_pass(conninfo, start)
    progress(f"warm-up pass: {warm.as_dict()}")
    ev, base, states, changes, errors = [], [], {}, 0, []
    for i in range(1, args.passes + 1):
        now = start + timedelta(minutes=i)
        # Alternate the order, so neither side always runs on the other's warm cache.
        if i % 2:
            ms_b, _ = _timed(metric_pass, conninfo, now)
            ms_e, rep = _timed(run, now)
        else:
            ms_e, rep = _timed(run, now)
            ms_b, _ = _timed(metric_pass, conninfo, now)
        ev.append(ms_e)
        base.append(ms_b)
        states, changes, errors = dict(rep.states), changes + rep.changes, errors + rep.errors
        if sum(rep.emails.values()):
            progress(f"  pass {i} queued emails {dict(rep.emails)} (not expected)")
    n = args.rules
    e_med, b_med = statistics.median(ev), statistics.median(base)
    progress(f"steady passes: evaluate {e_med:.1f} ms, metric queries {b_med:.1f} ms")

    # All-fire pass: the steady rules off, as many fresh rules that all breach.
    with psycopg.connect(conninfo) as conn:
        conn.execute("UPDATE alert_rules SET enabled = false")
        conn.commit()
    create_rules(conninfo, rule_specs(n, all_fire=True, prefix="fire"))
    fire_at = start + timedelta(minutes=args.passes + 1)
    fire_base_ms, _ = _timed(metric_pass, conninfo, fire_at)
    fire_ms, fire = _timed(run, fire_at)
    emails = sum(fire.emails.values())
    progress(f"all-fire pass: {fire_ms:.0f} ms, {dict(fire.emails)}, errors {fire.errors}")
    with psycopg.connect(conninfo) as conn:
        png = conn.execute(
            "SELECT avg(length(chart_png)), avg(length(body_html)), count(chart_png)"
            " FROM alert_notifications WHERE created_at = %s",
            (fire_at,),
        ).fetchone()
    assert png is not None
    return {
        "rules": n,
        "passes": args.passes,
        "pass_ms": {
            "median": round(e_med, 1),
            "min": round(min(ev), 1),
            "max": round(max(ev), 1),
        },
        "ms_per_rule": round(e_med / n, 2),
        "baseline_metric_queries_pass_ms": {
            "median": round(b_med, 1),
            "min": round(min(base), 1),
            "max": round(max(base), 1),
        },
        "baseline_ms_per_rule": round(b_med / n, 2),
        "overhead_ratio": round(e_med / b_med, 2),
        # Robust to a busy machine: each pass against its own baseline at the same clock.
        "overhead_ratio_median_of_pairs": round(
            statistics.median(e / b for e, b in zip(ev, base, strict=True)), 2
        ),
        "overhead_ms_per_rule": round((e_med - b_med) / n, 2),
        "steady_states": states,
        "steady_changes": changes,
        "errors": errors,
        "all_fire": {
            "rules": n,
            "emails_queued": emails,
            "pass_ms": round(fire_ms, 1),
            "ms_per_firing_email": round(fire_ms / max(emails, 1), 1),
            "baseline_metric_queries_pass_ms": round(fire_base_ms, 1),
            "compose_and_queue_ms_per_email": round((fire_ms - fire_base_ms) / max(emails, 1), 1),
            "charts": int(png[2]),
            "avg_chart_png_bytes": round(float(png[0] or 0)),
            "avg_html_bytes": round(float(png[1] or 0)),
            "errors": fire.errors,
        },
    }


class _Count:
    """aiosmtpd handler that accepts every message and counts them."""

    def __init__(self) -> None:
        self.n = 0
        self.bytes = 0
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            self.n += 1
            self.bytes += len(envelope.content or b"")
        return "250 2.0.0 accepted"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_TEMPLATES = """
SELECT rule_id, rule_name, kind, severity, value, threshold, subject, body_text, body_html,
       chart_png, link
FROM alert_notifications WHERE kind = 'firing' AND chart_png IS NOT NULL ORDER BY id DESC
"""
_ROWS = """
SELECT message_id, subject, body_text, body_html, chart_png, created_at, rule_name, kind,
       severity
FROM alert_notifications WHERE idempotency_key LIKE %s ORDER BY id
"""


def enqueue_round(conninfo: str, m: int, tag: str, at: datetime) -> list[dict[str, Any]]:
    """Queue ``m`` emails (bodies of the firing pass) due at ``at``; their rows, as sent."""
    from diffwatch.db.queries.alert_outbox import enqueue

    with psycopg.connect(conninfo) as conn:
        with conn.cursor(row_factory=dict_row) as cur:
            templates = cur.execute(_TEMPLATES).fetchall()
        if not templates:
            raise SystemExit("no firing email was queued by the all-fire pass; nothing to send")
        for i in range(m):
            t = templates[i % len(templates)]
            key = f"bench:{tag}:{i}"
            enqueue(
                conn,
                key=key,
                message_id=make_msgid(key.replace(":", "."), domain="bench.localhost"),
                rule_id=t["rule_id"],
                rule_name=t["rule_name"],
                kind=t["kind"],
                severity=t["severity"],
                created_at=at,
                value=t["value"],
                threshold=t["threshold"],
                subject=t["subject"],
                body_text=t["body_text"],
                body_html=t["body_html"],
                chart_png=t["chart_png"],
                link=t["link"],
                recipients=[RECIPIENT],
            )
        conn.commit()
        with conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(_ROWS, (f"bench:{tag}:%",)).fetchall()


def send_raw(port: int, rows: Sequence[dict[str, Any]]) -> tuple[float, float]:
    """Baseline: build and send ``rows`` over one smtplib connection; (total s, build s)."""
    from diffwatch.alerts.email import build_message

    build = 0.0
    t0 = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        for row in rows:
            b0 = time.perf_counter()
            msg = build_message(row, RECIPIENT, SENDER)
            build += time.perf_counter() - b0
            smtp.send_message(msg, from_addr=SENDER, to_addrs=[RECIPIENT])
    return time.perf_counter() - t0, build


def send_outbox(conninfo: str, port: int, at: datetime) -> tuple[float, int, int]:
    """deliver_due until the outbox has nothing due; (s, sent, passes)."""
    from diffwatch.alerts.deliver import deliver_due
    from diffwatch.alerts.smtp import SmtpSettings

    settings = SmtpSettings(host="127.0.0.1", port=port, sender=SENDER, timeout_s=30)
    sent = passes = 0
    t0 = time.perf_counter()
    while True:
        rep = deliver_due(conninfo, settings, at)
        passes += 1
        if rep.errors or rep.failed or rep.retry:
            raise SystemExit(f"delivery to the sink failed: {rep}")
        if not rep.claimed:
            break
        sent += rep.sent
    return time.perf_counter() - t0, sent, passes


def delivery(conninfo: str, args: argparse.Namespace, at: datetime) -> dict[str, Any]:
    """``--rounds`` x (outbox delivery of ``--emails`` vs plain smtplib of the same)."""
    from aiosmtpd.controller import Controller

    with psycopg.connect(conninfo) as conn:
        # The evaluation's own emails are not part of the measured batches.
        conn.execute("DELETE FROM alert_deliveries")
        conn.commit()
    handler = _Count()
    port = _free_port()
    ctl = Controller(handler, hostname="127.0.0.1", port=port)
    ctl.start()
    outbox_s, raw_s, build_s, passes = [], [], [], 0
    try:
        for r in range(args.rounds):
            rows = enqueue_round(conninfo, args.emails, f"r{r}", at)
            before = handler.n
            order = ("outbox", "raw") if r % 2 == 0 else ("raw", "outbox")
            for which in order:
                if which == "outbox":
                    s, sent, p = send_outbox(conninfo, port, at)
                    if sent != args.emails:
                        raise SystemExit(f"outbox sent {sent} of {args.emails} emails")
                    outbox_s.append(s)
                    passes = p
                else:
                    s, b = send_raw(port, rows)
                    raw_s.append(s)
                    build_s.append(b)
            if handler.n - before != 2 * args.emails:
                raise SystemExit(f"the sink got {handler.n - before}, not {2 * args.emails}")
            progress(
                f"  round {r}: outbox {args.emails / outbox_s[-1]:.0f}/s, "
                f"smtplib {args.emails / raw_s[-1]:.0f}/s"
            )
    finally:
        ctl.stop()
    o, w = statistics.median(outbox_s), statistics.median(raw_s)
    m = args.emails
    return {
        "emails": m,
        "rounds": args.rounds,
        "outbox_emails_per_s": round(m / o, 1),
        "outbox_ms_per_email": round(1000 * o / m, 2),
        "outbox_deliver_due_calls": passes,
        "baseline_smtplib_emails_per_s": round(m / w, 1),
        "baseline_ms_per_email": round(1000 * w / m, 2),
        "baseline_build_message_ms_per_email": round(1000 * statistics.median(build_s) / m, 2),
        "throughput_ratio_outbox_vs_smtplib": round(w / o, 2),
        "throughput_ratio_median_of_rounds": round(
            statistics.median(b / a for a, b in zip(outbox_s, raw_s, strict=True)), 2
        ),
        "overhead_ms_per_email": round(1000 * (o - w) / m, 2),
        "avg_message_bytes": round(handler.bytes / max(handler.n, 1)),
    }


def machine(conninfo: str) -> dict[str, Any]:
    """Where it ran: cores, CPU, memory, Python and PostgreSQL versions."""
    cpu = platform.processor()
    mem_gib = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gib = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    with psycopg.connect(conninfo) as conn:
        pg = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": mem_gib,
        "python": platform.python_version(),
        "postgres": pg,
        "psycopg": psycopg.__version__,
    }


def smoke_sizes() -> dict[str, Any]:
    """``--smoke``: 6 rules, 2 passes, 2 rounds of 4 emails over 2,000 rows, on the test
    server."""
    return {
        "rules": 6,
        "passes": 2,
        "emails": 4,
        "rounds": 2,
        "rows": 2_000,
        "hours": 1.0,
        "admin_url": smoke.admin_url(),
        "db_name": smoke.scratch_name(SCRATCH_DB),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: scratch database, benchmark, one JSON object on stdout."""
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Figures: evaluation.overhead_ratio = evaluate_all pass / metric queries alone "
        "(the cost of the state machine, row locks, history, outbox and a transaction per "
        "rule); delivery.throughput_ratio_outbox_vs_smtplib = outbox emails/s / plain smtplib "
        "emails/s (the cost of claim, lease and mark commits per email).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--rules", type=int, default=50, help="rules evaluated in each pass")
    p.add_argument("--passes", type=int, default=20, help="timed evaluation passes (1 min apart)")
    p.add_argument("--emails", type=int, default=200, help="emails sent in each delivery round")
    p.add_argument("--rounds", type=int, default=3, help="delivery rounds (median reported)")
    p.add_argument("--rows", type=int, default=80_000, help="generations seeded")
    p.add_argument("--hours", type=float, default=6.0, help="hours of history, ending now")
    p.add_argument("--admin-url", default=DEFAULT_ADMIN_URL, help="server for the scratch db")
    p.add_argument("--db-name", default=SCRATCH_DB, help="name of the scratch database")
    p.add_argument("--keep-db", action="store_true", help="do not drop the scratch database")
    smoke.add_smoke(p)
    args = smoke.parse(p, argv, smoke_sizes())
    for name in ("rules", "passes", "emails", "rounds", "rows"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name} must be at least 1, got {getattr(args, name)}")
    if not 0.5 <= args.hours <= 24:
        raise SystemExit(
            f"--hours must be between 0.5 and 24 (the minute rollups), got {args.hours}"
        )
    t0 = time.perf_counter()
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    with scratch_database(args.admin_url, args.db_name, args.keep_db) as url:
        migrate.upgrade(url)
        conninfo = raw_conninfo(url)
        progress(f"seeding {args.rows:,} generations over {args.hours:g} h")
        data = seed(conninfo, args.rows, args.hours, end)
        progress(f"seeded: {data}")
        result: dict[str, Any] = {"benchmark": "alerts", "smoke": args.smoke, "data": data}
        result["evaluation"] = evaluation(conninfo, args, end)
        progress(f"delivery: {args.rounds} rounds of {args.emails} emails")
        result["delivery"] = delivery(conninfo, args, end)
        result["machine"] = machine(conninfo)
    result["correct"] = correctness(result, args)
    result["elapsed_s"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(result, indent=2, default=str))
    return 0 if result["correct"]["ok"] else 1


def correctness(result: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """What must hold whatever the timings: no evaluation errors, every all-fire rule
    queued one email with a chart, every email reached the sink (``delivery`` stops the
    run otherwise), the seeded rows are there."""
    ev, fire, dl = result["evaluation"], result["evaluation"]["all_fire"], result["delivery"]
    checks = {
        "seeded_generations": result["data"]["generations"] == args.rows,
        "no_evaluation_errors": not ev["errors"] and not fire["errors"],
        "steady_rules_evaluated": sum(ev["steady_states"].values()) == args.rules,
        "all_fire_emails_queued": fire["emails_queued"] == args.rules,
        "all_fire_charts": fire["charts"] == fire["emails_queued"],
        "emails_delivered": dl["emails"] == args.emails and dl["rounds"] == args.rounds,
    }
    return {**checks, "ok": all(checks.values())}


if __name__ == "__main__":
    sys.exit(main())
