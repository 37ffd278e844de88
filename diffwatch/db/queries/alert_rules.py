"""SQL of alert rules, their states and their history (the evaluator, the CLI, the app).

Writes never commit: the caller owns the transaction, so a state change, its history row
and its outbox email land together or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from diffwatch.model.alert_rules import Rule
from diffwatch.model.alert_state import Change, State

_RULE_COLS = (
    "id, name, description, metric, models, versions, deployments, window_s, comparison,"
    " threshold, for_s, repeat_s, severity, recipients, alert_on_no_data, enabled, source"
)
_WRITABLE = (
    "name", "description", "metric", "models", "versions", "deployments", "window_s",
    "comparison", "threshold", "for_s", "repeat_s", "severity", "recipients",
    "alert_on_no_data", "enabled", "source",
)  # fmt: skip
_STATE_COLS = (
    "state", "since", "pending_since", "cleared_since", "episode", "active", "notified_at",
    "episode_notified", "value", "evaluated_at",
)  # fmt: skip


class RuleNameTaken(ValueError):
    """Another rule already has this name."""


class UnknownRule(LookupError):
    """No rule with this id or name."""


def _rule(row: dict[str, Any]) -> Rule:
    return Rule.model_validate(row)


def list_rules(conn: psycopg.Connection, enabled_only: bool = False) -> list[Rule]:
    """All rules by name (only enabled ones with ``enabled_only``)."""
    where = " WHERE enabled" if enabled_only else ""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(f"SELECT {_RULE_COLS} FROM alert_rules{where} ORDER BY name")
        return [_rule(r) for r in cur.fetchall()]


def get_rule(conn: psycopg.Connection, rule_id: int) -> Rule:
    """The rule with ``rule_id``; UnknownRule if there is none."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(f"SELECT {_RULE_COLS} FROM alert_rules WHERE id = %s", (rule_id,))
        row = cur.fetchone()
    if row is None:
        raise UnknownRule(f"no alert rule with id {rule_id}; `diffwatch alerts list` shows them")
    return _rule(row)


def rule_id_by_name(conn: psycopg.Connection, name: str) -> int:
    """The id of the rule called ``name``; UnknownRule if there is none."""
    row = conn.execute("SELECT id FROM alert_rules WHERE name = %s", (name,)).fetchone()
    if row is None:
        raise UnknownRule(f"no alert rule named {name!r}; `diffwatch alerts list` shows them")
    return int(row[0])


def _taken(name: str) -> RuleNameTaken:
    return RuleNameTaken(f"an alert rule named {name!r} exists already; pick another name")


def create_rule(conn: psycopg.Connection, rule: Rule, actor: str | None) -> int:
    """Insert ``rule``; return its id. RuleNameTaken if the name is used."""
    row = rule.as_row()
    cols = ", ".join(_WRITABLE)
    try:
        with conn.transaction():
            got = conn.execute(
                f"INSERT INTO alert_rules ({cols}, updated_by) VALUES"
                f" ({', '.join(f'%({c})s' for c in _WRITABLE)}, %(actor)s) RETURNING id",
                row | {"actor": actor},
            ).fetchone()
    except psycopg.errors.UniqueViolation:
        raise _taken(rule.name) from None
    assert got is not None
    return int(got[0])


def update_rule(conn: psycopg.Connection, rule_id: int, rule: Rule, actor: str | None) -> None:
    """Replace rule ``rule_id``'s fields with ``rule``'s; its state and history stay."""
    sets = ", ".join(f"{c} = %({c})s" for c in _WRITABLE)
    try:
        with conn.transaction():
            cur = conn.execute(
                f"UPDATE alert_rules SET {sets}, updated_at = now(), updated_by = %(actor)s"
                " WHERE id = %(id)s",
                rule.as_row() | {"actor": actor, "id": rule_id},
            )
    except psycopg.errors.UniqueViolation:
        raise _taken(rule.name) from None
    if cur.rowcount == 0:
        raise UnknownRule(f"no alert rule with id {rule_id}")


def delete_rule(conn: psycopg.Connection, rule_id: int) -> str:
    """Delete rule ``rule_id`` with its state and history; return its name.

    Emails already in the outbox are still delivered (they keep the rule's name).
    """
    row = conn.execute(
        "DELETE FROM alert_rules WHERE id = %s RETURNING name", (rule_id,)
    ).fetchone()
    if row is None:
        raise UnknownRule(f"no alert rule with id {rule_id}")
    return str(row[0])


def set_enabled(conn: psycopg.Connection, rule_id: int, enabled: bool, actor: str | None) -> None:
    """Switch a rule on or off (a disabled rule is not evaluated; its state is kept)."""
    cur = conn.execute(
        "UPDATE alert_rules SET enabled = %s, updated_at = now(), updated_by = %s WHERE id = %s",
        (enabled, actor, rule_id),
    )
    if cur.rowcount == 0:
        raise UnknownRule(f"no alert rule with id {rule_id}")


@dataclass(frozen=True, slots=True)
class LoadResult:
    """What loading a rules file changed (rule names)."""

    created: list[str]
    updated: list[str]
    unchanged: list[str]
    removed: list[str]


def upsert_rules(
    conn: psycopg.Connection, rules: Sequence[Rule], actor: str | None, prune_source: str | None
) -> LoadResult:
    """Create or update rules by name; with ``prune_source``, delete that source's others."""
    existing = {r.name: r for r in list_rules(conn)}
    created, updated, unchanged = [], [], []
    for rule in rules:
        old = existing.get(rule.name)
        if old is None:
            create_rule(conn, rule, actor)
            created.append(rule.name)
        elif old.model_copy(update={"id": None}) == rule:
            unchanged.append(rule.name)
        else:
            assert old.id is not None
            update_rule(conn, old.id, rule, actor)
            updated.append(rule.name)
    removed = []
    if prune_source is not None:
        keep = [r.name for r in rules]
        removed = [
            str(r[0])
            for r in conn.execute(
                "DELETE FROM alert_rules WHERE source = %s AND NOT name = ANY(%s) RETURNING name",
                (prune_source, keep),
            )
        ]
    return LoadResult(created, updated, unchanged, sorted(removed))


def load_state(conn: psycopg.Connection, rule_id: int) -> State:
    """The rule's state, locked for this transaction (a fresh ``State`` if it has none).

    Two evaluators running at once take turns per rule instead of both sending emails.
    """
    conn.execute(
        "INSERT INTO alert_states (rule_id) VALUES (%s) ON CONFLICT DO NOTHING", (rule_id,)
    )
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"SELECT {', '.join(_STATE_COLS)} FROM alert_states WHERE rule_id = %s FOR UPDATE",
            (rule_id,),
        )
        row = cur.fetchone()
    assert row is not None
    return State(**row)


def save_state(conn: psycopg.Connection, rule_id: int, s: State, error: str | None = None) -> None:
    """Write the rule's new state (and the evaluation error, None when it went well)."""
    sets = ", ".join(f"{c} = %({c})s" for c in _STATE_COLS)
    conn.execute(
        f"UPDATE alert_states SET {sets}, error = %(error)s WHERE rule_id = %(rule_id)s",
        {c: getattr(s, c) for c in _STATE_COLS} | {"error": error, "rule_id": rule_id},
    )


def record_error(conn: psycopg.Connection, rule_id: int, at: datetime, error: str) -> None:
    """Note that evaluating the rule failed at ``at`` (its state is left as it was)."""
    conn.execute(
        "INSERT INTO alert_states (rule_id, evaluated_at, error) VALUES (%s, %s, %s)"
        " ON CONFLICT (rule_id) DO UPDATE SET evaluated_at = excluded.evaluated_at,"
        " error = excluded.error",
        (rule_id, at, error),
    )


def add_event(conn: psycopg.Connection, rule: Rule, at: datetime, change: Change, s: State) -> int:
    """Append one state change to the rule's history; return its id."""
    row = conn.execute(
        "INSERT INTO alert_events (rule_id, at, from_state, to_state, value, threshold,"
        " episode, note) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (
            rule.id,
            at,
            change.from_state,
            change.to_state,
            s.value,
            rule.threshold,
            s.episode,
            change.note + (f" (email: {change.notice})" if change.notice else ""),
        ),
    ).fetchone()
    assert row is not None
    return int(row[0])


def firing_since(conn: psycopg.Connection, rule_id: int, episode: int) -> datetime | None:
    """When the rule's episode ``episode`` started firing (None if not recorded)."""
    row = conn.execute(
        "SELECT min(at) FROM alert_events WHERE rule_id = %s AND episode = %s"
        " AND to_state = 'firing'",
        (rule_id, episode),
    ).fetchone()
    return row[0] if row else None


@dataclass(frozen=True, slots=True)
class RuleStatus:
    """A rule with where it stands (for the Alerts page and ``diffwatch alerts list``)."""

    rule: Rule
    state: str  # 'never evaluated' until the evaluator has seen it
    since: datetime | None
    value: float | None
    evaluated_at: datetime | None
    episode: int
    error: str | None


def statuses(conn: psycopg.Connection) -> list[RuleStatus]:
    """Every rule with its current state, firing ones first."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"SELECT {', '.join('r.' + c.strip() for c in _RULE_COLS.split(','))},"
            " s.state, s.since, s.value AS s_value, s.evaluated_at, s.episode, s.error"
            " FROM alert_rules r LEFT JOIN alert_states s ON s.rule_id = r.id"
        )
        rows = cur.fetchall()
    order = {"firing": 0, "pending": 1, "no_data": 2, "resolved": 3, "normal": 4}
    out = [
        RuleStatus(
            _rule({k: r[k] for k in r if k in Rule.model_fields}),
            r["state"] or "never evaluated",
            r["since"],
            r["s_value"],
            r["evaluated_at"],
            r["episode"] or 0,
            r["error"],
        )
        for r in rows
    ]
    return sorted(out, key=lambda s: (order.get(s.state, 5), s.rule.name))


def firing_count(conn: psycopg.Connection) -> int:
    """How many enabled rules are firing now (a disabled rule keeps a state nobody watches)."""
    row = conn.execute(
        "SELECT count(*) FROM alert_rules r JOIN alert_states s ON s.rule_id = r.id"
        " WHERE r.enabled AND s.state = 'firing'"
    ).fetchone()
    return int(row[0]) if row else 0


@dataclass(frozen=True, slots=True)
class EventRow:
    """One state change of one rule."""

    at: datetime
    rule_id: int
    rule_name: str
    from_state: str
    to_state: str
    value: float | None
    threshold: float | None
    episode: int
    note: str


def events(
    conn: psycopg.Connection,
    since: datetime | None = None,
    rule_id: int | None = None,
    limit: int = 500,
) -> list[EventRow]:
    """State changes, newest first (optionally of one rule, and after ``since``)."""
    conds, params = ["TRUE"], {"limit": limit, "since": since, "rule": rule_id}
    if since is not None:
        conds.append("e.at >= %(since)s")
    if rule_id is not None:
        conds.append("e.rule_id = %(rule)s")
    rows = conn.execute(
        "SELECT e.at, e.rule_id, r.name, e.from_state, e.to_state, e.value, e.threshold,"
        " e.episode, e.note FROM alert_events e JOIN alert_rules r ON r.id = e.rule_id"
        f" WHERE {' AND '.join(conds)} ORDER BY e.at DESC, e.id DESC LIMIT %(limit)s",
        params,
    )
    return [EventRow(*r) for r in rows]
