"""The alert pass: evaluate every rule and deliver what is due, once or on a period.

What ``diffwatch alerts evaluate``, ``alerts deliver`` and the worker's alert jobs run.
Rule files are loaded into the database by ``store_rules`` (``alerts load``).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from diffwatch.model.alert_rules import Rule

log = logging.getLogger("diffwatch.alerts")


def delivery_dict(report: Any) -> dict[str, Any]:
    """A DeliveryReport as JSON-ready counts and error lines."""
    d = dataclasses.asdict(report)
    d["errors"] = list(d["errors"])
    return d


def deliver(conninfo: str, now: datetime) -> dict[str, Any]:
    """One delivery pass of the outbox's due emails at ``now``, as ``delivery_dict``."""
    from diffwatch.alerts.deliver import deliver_due
    from diffwatch.alerts.smtp import SmtpSettings

    return delivery_dict(deliver_due(conninfo, SmtpSettings(), now))


def evaluate_and_deliver(
    conninfo: str, now: datetime, deliver: bool, dashboard_url: str
) -> dict[str, Any]:
    """One evaluation pass at ``now`` and, with ``deliver``, one delivery pass."""
    from diffwatch.alerts.deliver import deliver_due
    from diffwatch.alerts.evaluate import evaluate_all
    from diffwatch.alerts.smtp import SmtpSettings

    smtp = SmtpSettings()
    report = evaluate_all(
        conninfo,
        now,
        dashboard_url=dashboard_url,
        message_domain=smtp.message_id_domain,
    ).as_dict()
    if deliver:
        report["delivery"] = delivery_dict(deliver_due(conninfo, smtp, now))
    return report


def follow(
    conninfo: str, dashboard_url: str, *, deliver: bool, interval_s: float, stop: threading.Event
) -> Iterator[dict[str, Any]]:
    """Evaluate (and deliver) now and every ``interval_s`` s until ``stop``; yields each pass.

    While the database is away the pass waits for it (one line when it goes, one when it is
    back); nothing queued is lost.
    """
    from diffwatch.outage import OutageRetry
    from diffwatch.periodic import every

    retrying = OutageRetry(
        stop,
        log,
        on_down=lambda: None,
        consequence="No rule is evaluated and no email sent meanwhile; the next pass "
        "catches up and nothing queued is lost.",
        resumed="evaluating alerts again",
    )

    def step() -> dict[str, Any]:
        return evaluate_and_deliver(conninfo, datetime.now(UTC), deliver, dashboard_url)

    return every(step, interval_s, stop, retrying)


def store_rules(
    conninfo: str,
    rules: Sequence[Rule],
    path: Path,
    actor: str,
    *,
    prune: bool,
    dry_run: bool,
) -> dict[str, Any]:
    """Create or update ``rules`` (read from ``path``) by name, audited as rule.load.

    ``prune`` deletes the rules an earlier load of the same file stored that it no longer
    has; ``dry_run`` rolls everything back. Returns the names created, updated, unchanged and
    removed.
    """
    import psycopg

    from diffwatch.db.queries import alert_rules as q
    from diffwatch.db.queries.users import audit

    source = f"yaml:{path}"
    with psycopg.connect(conninfo) as conn:
        res = q.upsert_rules(conn, rules, actor, source if prune else None)
        d = {
            "file": str(path),
            "created": res.created,
            "updated": res.updated,
            "unchanged": res.unchanged,
            "removed": res.removed,
            "dry_run": dry_run,
        }
        if dry_run:
            conn.rollback()
        else:
            audit(conn, actor, "rule.load", str(path), d)
            conn.commit()
    return d
