"""Evaluate every enabled alert rule once at a given time, and queue the emails it calls for.

Per rule, one transaction: lock its state row, step the state machine, write the new state,
its history row and (when an email is due) the composed email into the outbox, keyed by an
idempotency key. A crash anywhere leaves either all of that or none of it, so an event is
never lost and never queued twice. Delivery is separate (``diffwatch.alerts.deliver``).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlencode

import psycopg

from diffwatch.alerts.notice import Notice
from diffwatch.db.queries import alert_metrics, rollups
from diffwatch.db.queries import alert_rules as q
from diffwatch.errors import first_line
from diffwatch.model.alert_metrics import METRICS
from diffwatch.model.alert_rules import Rule
from diffwatch.model.alert_state import Change, State, step
from diffwatch.outage import DB_DOWN_ERRORS

log = logging.getLogger("diffwatch.alerts")


@dataclass
class EvaluationReport:
    """What one evaluation pass did."""

    at: str
    rules: int = 0
    states: Counter[str] = field(default_factory=Counter)  # state -> rules in it now
    changes: int = 0
    emails: Counter[str] = field(default_factory=Counter)  # kind -> emails queued
    skipped: int = 0  # rules last evaluated after ``at`` (a clock that went back)
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "at": self.at,
            "rules": self.rules,
            "states": dict(self.states),
            "changes": self.changes,
            "emails": dict(self.emails),
            "skipped": self.skipped,
            "errors": self.errors,
        }


def view_link(base_url: str | None, rule: Rule, start: datetime, end: datetime) -> str | None:
    """The dashboard page of the rule's metric, filtered to its scope and window."""
    if not base_url:
        return None
    from diffwatch.model.dashboard_url import (  # pure: the URL format the dashboard reads
        View,
        to_params,
    )

    view = View(
        range="custom",
        start=start,
        end=end,
        models=rule.models,
        versions=rule.versions,
        deployments=rule.deployments,
    )
    query = urlencode(to_params(view), safe=",/:")
    return f"{base_url.rstrip('/')}/{METRICS[rule.metric].page}" + (f"?{query}" if query else "")


def evaluate_rule(
    conn: psycopg.Connection,
    rule: Rule,
    now: datetime,
    *,
    dashboard_url: str | None,
    message_domain: str,
) -> tuple[State, Change | None] | None:
    """Evaluate one rule at ``now`` and commit; None when it was last evaluated later."""
    from diffwatch.alerts.email import compose
    from diffwatch.alerts.webhook import facts
    from diffwatch.db.queries.alert_outbox import enqueue

    assert rule.id is not None
    value = alert_metrics.value(conn, rule, now)
    with conn.transaction():
        prev = q.load_state(conn, rule.id)
        if prev.evaluated_at is not None and now < prev.evaluated_at:
            return None
        nxt, change = step(rule, prev, value, now)
        q.save_state(conn, rule.id, nxt)
        if change is None:
            return nxt, None
        q.add_event(conn, rule, now, change, nxt)
        if change.notice is None:
            return nxt, change
        start, end = alert_metrics.window(rule, now)
        notice = Notice(
            kind=change.notice,
            rule=rule,
            value=value,
            at=now,
            window_start=start,
            window_end=end,
            episode=nxt.episode,
            state_since=nxt.since,
            firing_since=q.firing_since(conn, rule.id, nxt.episode),
            note=change.note,
            link=view_link(dashboard_url, rule, start, end),
            series=alert_metrics.series(conn, rule, now),
        )
        mail = compose(notice)
        enqueue(
            conn,
            key=notice.idempotency_key,
            message_id=notice.message_id(message_domain),
            rule_id=rule.id,
            rule_name=rule.name,
            kind=notice.kind,
            severity=rule.severity,
            created_at=now,
            value=value,
            threshold=rule.threshold,
            subject=mail.subject,
            body_text=mail.text,
            body_html=mail.html,
            chart_png=mail.png,
            link=notice.link,
            recipients=list(rule.recipients),
            facts=facts(notice, mail.subject),
        )
    return nxt, change


def evaluate_all(
    conninfo: str,
    now: datetime,
    *,
    dashboard_url: str | None = None,
    message_domain: str = "diffwatch.localhost",
    refresh_rollups: bool = True,
) -> EvaluationReport:
    """Evaluate every enabled rule at ``now`` (an aware datetime: the injectable clock).

    The rollups are refreshed first, so no rule judges data the dashboard has not rolled up
    yet. A rule whose metric query fails is reported and noted on its state; the others go
    on. An unreachable database raises (the caller's outage policy retries).
    """
    report = EvaluationReport(at=now.isoformat())
    with psycopg.connect(conninfo) as conn:
        if refresh_rollups:
            conn.autocommit = True
            rollups.refresh(conn)
            conn.autocommit = False
        rules = q.list_rules(conn, enabled_only=True)
        conn.commit()
        report.rules = len(rules)
        for rule in rules:
            assert rule.id is not None
            try:
                got = evaluate_rule(
                    conn, rule, now, dashboard_url=dashboard_url, message_domain=message_domain
                )
            except DB_DOWN_ERRORS:
                raise
            except Exception as exc:  # one broken rule must not stop the others
                conn.rollback()
                msg = f"rule {rule.name!r} ({rule.metric}): {first_line(exc)}"
                log.warning("alert evaluation failed: %s", msg)
                report.errors.append(msg)
                with conn.transaction():
                    q.record_error(conn, rule.id, now, first_line(exc))
                continue
            conn.commit()
            if got is None:
                report.skipped += 1
                continue
            state, change = got
            report.states[state.state] += 1
            if change is not None:
                report.changes += 1
                if change.notice:
                    report.emails[change.notice] += 1
    return report
