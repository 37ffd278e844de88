"""Reads and writes of the Alerts page: rules, where they stand, their history and emails.

Never cached: an admin must see a change at once, and states move every evaluation. Every
write checks the role on the server first (``require_write``) and is audited in the same
transaction as the change, so a change without its audit row cannot happen.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd
import psycopg
from pydantic import ValidationError

from diffwatch.app.data import _run
from diffwatch.model.alert_metrics import METRICS
from diffwatch.model.alert_rules import Rule, format_duration, redact_target

# state -> (marker, words): a marker that reads without colour (and without an emoji font)
STATE_MARKS: dict[str, str] = {
    "firing": "▲ FIRING",
    "pending": "◆ pending",
    "no_data": "○ no data",
    "resolved": "✓ resolved",
    "normal": "· normal",
    "never evaluated": "? never evaluated",
}
FIELD_LABELS = {
    "name": "Name",
    "description": "Description",
    "metric": "Metric",
    "models": "Models",
    "versions": "Versions",
    "deployments": "Deployments",
    "window": "Window",
    "window_s": "Window",
    "comparison": "Comparison",
    "threshold": "Threshold",
    "for": "For",
    "for_s": "For",
    "repeat": "Repeat",
    "repeat_s": "Repeat",
    "severity": "Severity",
    "recipients": "Recipients",
    "alert_on_no_data": "Alert on no data",
    "enabled": "Enabled",
}


def problems(exc: ValidationError) -> list[str]:
    """One line per invalid field of a rule: 'Recipients: 'bob' is not an email address'."""
    out = []
    for e in exc.errors():
        field = next((str(p) for p in e["loc"] if isinstance(p, str)), "")
        label = FIELD_LABELS.get(field, field or "Rule")
        out.append(f"{label}: {e['msg'].removeprefix('Value error, ')}")
    return out


def _when(t: datetime | None) -> str:
    return t.strftime("%Y-%m-%d %H:%M UTC") if t is not None else ""


def _condition(rule: Rule) -> str:
    return f"{rule.comparison} {METRICS[rule.metric].format(rule.threshold)}"


def rules() -> list[Rule]:
    """Every rule by name."""
    from diffwatch.db.queries.alert_rules import list_rules

    return _run(list_rules)


def states() -> pd.DataFrame:
    """Every rule with where it stands, firing ones first; values formatted with the metric."""
    from diffwatch.db.queries.alert_rules import statuses

    rows = []
    for s in _run(statuses):
        m = METRICS[s.rule.metric]
        rows.append(
            {
                "state": STATE_MARKS.get(s.state, s.state),
                "rule": s.rule.name,
                "since": _when(s.since),
                "value": m.format(s.value) if s.evaluated_at else "",
                "condition": _condition(s.rule),
                "severity": s.rule.severity,
                "enabled": s.rule.enabled,
                "last evaluated": _when(s.evaluated_at),
                "last error": s.error or "",
                "_state": s.state,
            }
        )
    return pd.DataFrame(rows, columns=[*STATE_COLS, "_state"])


def firing_count() -> int:
    """How many enabled rules are firing now, whatever the page's filter."""
    from diffwatch.db.queries.alert_rules import firing_count as q

    return _run(q)


STATE_COLS = ["state", "rule", "since", "value", "condition", "severity", "enabled",
              "last evaluated", "last error"]  # fmt: skip


def rules_table(rs: list[Rule]) -> pd.DataFrame:
    """The rules as a person reads them (one row each)."""
    return pd.DataFrame(
        [
            {
                "rule": r.name,
                "condition": r.describe(),
                "severity": r.severity,
                "for": format_duration(r.for_s),
                "repeat": format_duration(r.repeat_s) if r.repeat_s else "never",
                "no data alerts": r.alert_on_no_data,
                "enabled": r.enabled,
                "source": r.source,
                "recipients": ", ".join(redact_target(t) for t in r.recipients),
                "description": r.description,
            }
            for r in rs
        ],
        columns=["rule", "condition", "severity", "for", "repeat", "no data alerts",
                 "enabled", "source", "recipients", "description"],
    )  # fmt: skip


def events(rule_id: int | None, limit: int = 500) -> pd.DataFrame:
    """State changes, newest first (of one rule, or all); values formatted with the metric."""
    from diffwatch.db.queries.alert_rules import events as q
    from diffwatch.db.queries.alert_rules import list_rules

    def read(conn: psycopg.Connection) -> tuple[list[Any], dict[int, Rule]]:
        return q(conn, rule_id=rule_id, limit=limit), {r.id: r for r in list_rules(conn)}  # type: ignore[misc]

    rows, by_id = _run(read)
    out = []
    for e in rows:
        m = METRICS[by_id[e.rule_id].metric] if e.rule_id in by_id else None
        fmt = m.format if m else (lambda v: "" if v is None else f"{v:g}")
        out.append(
            {
                "at": _when(e.at),
                "rule": e.rule_name,
                "change": f"{e.from_state} → {e.to_state}",
                "value": fmt(e.value),
                "threshold": fmt(e.threshold),
                "episode": e.episode,
                "note": e.note,
            }
        )
    return pd.DataFrame(
        out, columns=["at", "rule", "change", "value", "threshold", "episode", "note"]
    )


_DELIVERY_NAMES = {
    "id": "id", "created_at": "queued", "rule_name": "rule", "kind": "kind",
    "recipient": "recipient", "status": "status", "attempts": "attempts",
    "last_error": "last error", "next_attempt_at": "next attempt", "sent_at": "sent",
    "subject": "subject",
}  # fmt: skip
DELIVERY_COLS = list(_DELIVERY_NAMES.values())


def deliveries(limit: int = 200, status: str | None = None) -> pd.DataFrame:
    """Emails per recipient, newest first, times as text (``alert_outbox.recent``)."""
    from diffwatch.db.queries.alert_outbox import recent

    rows = _run(lambda c: recent(c, limit=limit, status=status))
    df = pd.DataFrame(rows, columns=list(_DELIVERY_NAMES)).rename(columns=_DELIVERY_NAMES)
    for col in ("queued", "next attempt", "sent"):
        df[col] = [_when(t) if t is not None and not pd.isna(t) else "" for t in df[col]]
    df["last error"] = df["last error"].fillna("")
    # webhook URLs are secrets (a Slack hook's path is its password): scheme and host only
    df["recipient"] = [redact_target(str(t)) for t in df["recipient"]]
    # a sent or failed delivery has no next attempt, whatever the column still holds
    df.loc[df["status"].isin(["sent", "failed"]), "next attempt"] = ""
    return df


def delivery_counts() -> dict[str, int]:
    """Deliveries per status ('pending', 'sending', 'sent', 'failed')."""
    from diffwatch.db.queries.alert_outbox import counts

    return dict(_run(counts))


# -- writes ----------------------------------------------------------------------------


def _diff(old: Rule, new: Rule) -> dict[str, dict[str, Any]]:
    a, b = old.as_row(), new.as_row()
    return {k: {"from": a[k], "to": b[k]} for k in b if a.get(k) != b[k]}


def create_rule(fields: dict[str, Any]) -> Rule:
    """Validate and store a new rule as the logged-in admin; audit ``rule.create``.

    Raises pydantic ValidationError (see ``problems``) or RuleNameTaken; nothing is stored.
    """
    from diffwatch.app.session import require_write
    from diffwatch.db.queries.alert_rules import create_rule as q
    from diffwatch.db.queries.users import audit

    admin = require_write("rule.set")
    rule = Rule.model_validate({**fields, "source": "app"})

    def apply(conn: psycopg.Connection) -> int:
        with conn.transaction():
            rule_id = q(conn, rule, admin.username)
            audit(conn, admin.username, "rule.create", rule.name, rule.as_row())
        return rule_id

    return rule.model_copy(update={"id": _run(apply)})


def update_rule(rule_id: int, fields: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Replace rule ``rule_id``'s fields; audit ``rule.update`` with what changed (returned).

    The rule keeps its source. Raises ValidationError, RuleNameTaken or UnknownRule.
    """
    from diffwatch.app.session import require_write
    from diffwatch.db.queries.alert_rules import get_rule
    from diffwatch.db.queries.alert_rules import update_rule as q
    from diffwatch.db.queries.users import audit

    admin = require_write("rule.set")

    def apply(conn: psycopg.Connection) -> dict[str, dict[str, Any]]:
        with conn.transaction():
            old = get_rule(conn, rule_id)
            new = Rule.model_validate({**fields, "source": old.source})
            changed = _diff(old, new)
            if changed:
                q(conn, rule_id, new, admin.username)
                audit(conn, admin.username, "rule.update", new.name, changed)
        return changed

    return _run(apply)


def set_enabled(rule_id: int, enabled: bool) -> bool:
    """Switch a rule on or off; audit ``rule.enable``/``rule.disable``; False if unchanged."""
    from diffwatch.app.session import require_write
    from diffwatch.db.queries.alert_rules import get_rule
    from diffwatch.db.queries.alert_rules import set_enabled as q
    from diffwatch.db.queries.users import audit

    admin = require_write("rule.set")

    def apply(conn: psycopg.Connection) -> bool:
        with conn.transaction():
            old = get_rule(conn, rule_id)
            if old.enabled == enabled:
                return False
            q(conn, rule_id, enabled, admin.username)
            action = "rule.enable" if enabled else "rule.disable"
            audit(conn, admin.username, action, old.name, {"enabled": {"from": old.enabled,
                                                                     "to": enabled}})  # fmt: skip
        return True

    return _run(apply)


def delete_rule(rule_id: int) -> str:
    """Delete a rule with its state and history; audit ``rule.delete`` with its fields."""
    from diffwatch.app.session import require_write
    from diffwatch.db.queries.alert_rules import delete_rule as q
    from diffwatch.db.queries.alert_rules import get_rule
    from diffwatch.db.queries.users import audit

    admin = require_write("rule.set")

    def apply(conn: psycopg.Connection) -> str:
        with conn.transaction():
            old = get_rule(conn, rule_id)
            name = q(conn, rule_id)
            audit(conn, admin.username, "rule.delete", name, old.as_row())
        return name

    return _run(apply)


def retry_delivery(delivery_id: int, recipient: str, rule_name: str) -> bool:
    """Queue a failed email delivery again now; audit ``alert.retry``. False if not failed."""
    from datetime import UTC

    from diffwatch.app.session import require_write
    from diffwatch.db.queries.alert_outbox import retry_failed
    from diffwatch.db.queries.users import audit

    admin = require_write("alert.retry")

    def apply(conn: psycopg.Connection) -> bool:
        with conn.transaction():
            done = bool(retry_failed(conn, delivery_id, datetime.now(UTC)))
            if done:
                audit(
                    conn,
                    admin.username,
                    "alert.retry",
                    rule_name,
                    {"delivery_id": delivery_id, "recipient": recipient},
                )
        return done

    return _run(apply)
