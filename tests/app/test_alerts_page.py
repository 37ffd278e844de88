"""The Alerts page on real Postgres (AppTest): states, rules and their changes, history."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from streamlit.testing.v1 import AppTest

from diffwatch.db.queries import alert_outbox, alert_rules
from diffwatch.model.alert_rules import Rule
from tests.app.accounts import add_account, as_user, texts
from tests.app.test_login import _as, audit

NOW = datetime.now(UTC).replace(microsecond=0)


def rule(name: str, **kw) -> Rule:
    fields = {"metric": "latency_p95_ms", "window": "15m", "comparison": ">", "threshold": 5000,
              "for": "5m", "recipients": ["ops@example.com"]} | kw  # fmt: skip
    return Rule.model_validate({"name": name, **fields})


def add_rule(conninfo: str, r: Rule) -> int:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        return alert_rules.create_rule(conn, r, "test")


def set_state(conninfo: str, rule_id: int, state: str, value: float | None, **kw) -> None:
    cols = {"rule_id": rule_id, "state": state, "value": value, "since": NOW - timedelta(
        minutes=30), "evaluated_at": NOW - timedelta(minutes=1)} | kw  # fmt: skip
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(
            f"INSERT INTO alert_states ({', '.join(cols)})"
            f" VALUES ({', '.join(['%s'] * len(cols))})",
            list(cols.values()),
        )


def add_event(conninfo: str, rule_id: int, at: datetime, frm: str, to: str, value: float) -> None:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO alert_events (rule_id, at, from_state, to_state, value, threshold,"
            " episode, note) VALUES (%s, %s, %s, %s, %s, 5000, 1, 'held for 5m')",
            (rule_id, at, frm, to, value),
        )


def rules_in_db(conninfo: str) -> list[Rule]:
    with psycopg.connect(conninfo) as conn:
        return alert_rules.list_rules(conn)


def success(at: AppTest) -> str:
    """The success message as shown (markdown escapes removed)."""
    assert at.success, [e.value for e in at.error]
    return re.sub(r"\\(.)", r"\1", at.success[0].value)


def button(at: AppTest, label: str):
    found = [b for b in at.button if b.label == label]
    assert found, (label, [b.label for b in at.button])
    return found[0]


def frame_with(at: AppTest, column: str):
    found = [d.value for d in at.dataframe if column in d.value.columns]
    assert found, column
    return found[0]


def fill_new(at: AppTest, **values: str) -> None:
    at.selectbox(key="new0-metric").select("latency_p95_ms").run()
    for k, v in values.items():
        at.text_input(key=f"new0-{k}").input(v)


# -- states, rules and history ---------------------------------------------------------


def test_states_table_shows_each_rule_state_value_and_error(conninfo, monkeypatch) -> None:
    aid = add_account(conninfo, "ada", "admin")
    hot = add_rule(conninfo, rule("canary p95", deployments=["canary"]))
    slow = add_rule(conninfo, rule("nsfw spike", metric="nsfw_rate", threshold=0.05))
    quiet = add_rule(conninfo, rule("ratings quiet", metric="human_rating_mean",
                                    comparison="<", threshold=3))  # fmt: skip
    add_rule(conninfo, rule("brand new"))
    set_state(conninfo, hot, "firing", 6120.4)
    set_state(conninfo, slow, "pending", 0.071)
    set_state(conninfo, quiet, "no_data", None, error="timeout reading ratings")
    at = as_user(conninfo, monkeypatch, aid, page="alerts")
    assert at.title[0].value == "Alerts"
    assert "diffwatch alerts load rules.yaml" in texts(at)
    assert [(m.label, m.value) for m in at.metric][:3] == [
        ("Firing", "1"), ("Pending", "1"), ("No data", "1")
    ]  # fmt: skip
    states = frame_with(at, "last evaluated")
    rows = {r["rule"]: r for r in states.to_dict("records")}
    assert list(states["rule"]) == ["canary p95", "nsfw spike", "ratings quiet", "brand new"]
    assert rows["canary p95"]["state"] == "▲ FIRING"
    assert rows["canary p95"]["value"] == "6,120 ms"
    assert rows["canary p95"]["condition"] == "> 5,000 ms"
    assert (rows["nsfw spike"]["state"], rows["nsfw spike"]["value"]) == ("◆ pending", "7.10 %")
    assert rows["ratings quiet"]["state"] == "○ no data"
    assert rows["ratings quiet"]["last error"] == "timeout reading ratings"
    assert rows["brand new"]["state"] == "? never evaluated"
    assert rows["brand new"]["last evaluated"] == ""
    described = frame_with(at, "recipients")
    assert "p95 latency > 5,000 ms over 15m for 5m (deployment canary)" in list(
        described["condition"]
    )


def test_history_lists_changes_newest_first_and_filters_by_rule(conninfo, monkeypatch) -> None:
    aid = add_account(conninfo, "ada", "admin")
    a = add_rule(conninfo, rule("canary p95"))
    b = add_rule(conninfo, rule("stable p95"))
    add_event(conninfo, a, NOW - timedelta(minutes=20), "normal", "pending", 5300)
    add_event(conninfo, a, NOW - timedelta(minutes=10), "pending", "firing", 6120)
    add_event(conninfo, b, NOW - timedelta(minutes=5), "normal", "pending", 5100)
    at = as_user(conninfo, monkeypatch, aid, page="alerts")
    hist = frame_with(at, "change")
    assert list(hist["rule"]) == ["stable p95", "canary p95", "canary p95"]
    assert list(hist["change"])[1] == "pending → firing"
    assert list(hist["value"])[1] == "6,120 ms"
    at.selectbox(key="alerts-history-rule").select("canary p95").run()
    assert list(frame_with(at, "change")["rule"]) == ["canary p95", "canary p95"]


# -- admin changes ---------------------------------------------------------------------


def test_admin_creates_a_rule_through_the_form_and_it_is_audited(conninfo, monkeypatch) -> None:
    aid = add_account(conninfo, "ada", "admin")
    at = as_user(conninfo, monkeypatch, aid, page="alerts")
    fill_new(at, name="canary p95", threshold="5000", window="10m", recipients=(
        "ops@example.com, oncall@example.com"))  # fmt: skip
    at.multiselect(key="new0-deployments").select("canary")
    at.selectbox(key="new0-severity").select("critical")
    button(at, "Create rule").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    (stored,) = rules_in_db(conninfo)
    assert (stored.name, stored.metric, stored.threshold, stored.window_s) == (
        "canary p95", "latency_p95_ms", 5000.0, 600)  # fmt: skip
    assert stored.deployments == ("canary",) and stored.severity == "critical"
    assert stored.recipients == ("ops@example.com", "oncall@example.com")
    assert stored.source == "app"
    ((actor, target, details),) = audit(conninfo, "rule.create")
    assert (actor, target, details["threshold"], details["window_s"]) == (
        "ada", "canary p95", 5000.0, 600)  # fmt: skip
    assert "Created rule canary p95" in success(at)
    assert list(frame_with(at, "recipients")["rule"]) == ["canary p95"]
    assert at.text_input(key="new1-name").value == ""  # a fresh form for the next rule


def test_an_invalid_rule_shows_which_field_and_stores_nothing(conninfo, monkeypatch) -> None:
    aid = add_account(conninfo, "ada", "admin")
    at = as_user(conninfo, monkeypatch, aid, page="alerts")
    fill_new(at, name="bad", threshold="lots", recipients="bob")
    button(at, "Create rule").click().run()
    (err,) = [e.value for e in at.error]
    assert "The rule was not saved" in err
    assert "Recipients" in err and "bob" in err and "not an email address" in err
    assert "Threshold" in err
    assert rules_in_db(conninfo) == [] and audit(conninfo, "rule.create") == []
    assert not at.success


def test_admin_edits_disables_and_deletes_a_rule_with_audit_rows(conninfo, monkeypatch) -> None:
    aid = add_account(conninfo, "ada", "admin")
    rid = add_rule(conninfo, rule("canary p95"))
    add_event(conninfo, rid, NOW, "normal", "pending", 5300)
    at = as_user(conninfo, monkeypatch, aid, page="alerts")
    assert at.text_input(key=f"edit{rid}-threshold").value == "5000"  # prefilled
    at.text_input(key=f"edit{rid}-threshold").input("6000")
    at.text_input(key=f"edit{rid}-repeat").input("2h")
    button(at, "Save rule").click().run()
    assert "Saved rule canary p95: threshold, repeat" in success(at)
    (stored,) = rules_in_db(conninfo)
    assert (stored.threshold, stored.repeat_s) == (6000.0, 7200)
    assert audit(conninfo, "rule.update") == [
        (
            "ada",
            "canary p95",
            {"threshold": {"from": 5000.0, "to": 6000.0}, "repeat_s": {"from": 3600, "to": 7200}},
        )
    ]
    at.button(key="alerts-toggle").click().run()
    assert rules_in_db(conninfo)[0].enabled is False
    assert audit(conninfo, "rule.disable") == [
        ("ada", "canary p95", {"enabled": {"from": True, "to": False}})
    ]
    assert at.button(key="alerts-toggle").label == "Enable rule"
    assert at.button(key="alerts-delete").disabled  # not before the confirmation
    at.checkbox(key=f"alerts-delete-sure-{rid}").check().run()
    at.button(key="alerts-delete").click().run()
    assert rules_in_db(conninfo) == []
    ((actor, target, details),) = audit(conninfo, "rule.delete")
    assert (actor, target, details["threshold"]) == ("ada", "canary p95", 6000.0)
    assert "Deleted rule canary p95" in success(at)
    with psycopg.connect(conninfo) as conn:
        assert conn.execute("SELECT count(*) FROM alert_events").fetchone()[0] == 0
    # the admin page's audit filter for alert rule changes finds all three
    at = as_user(conninfo, monkeypatch, aid, page="admin")
    at.selectbox[2].select("alert rule changes").run()
    log = at.dataframe[1].value
    assert sorted(log["action"]) == ["rule.delete", "rule.disable", "rule.update"]


# -- roles -----------------------------------------------------------------------------


def test_ops_sees_everything_but_no_write_controls(conninfo, monkeypatch) -> None:
    oid = add_account(conninfo, "olga", "ops")
    rid = add_rule(conninfo, rule("canary p95"))
    set_state(conninfo, rid, "firing", 6120.0)
    add_event(conninfo, rid, NOW, "pending", "firing", 6120)
    at = as_user(conninfo, monkeypatch, oid, page="alerts")
    assert not at.error and at.title[0].value == "Alerts"
    assert frame_with(at, "last evaluated")["state"][0] == "▲ FIRING"
    assert list(frame_with(at, "recipients")["rule"]) == ["canary p95"]
    assert list(frame_with(at, "change")["change"]) == ["pending → firing"]
    assert "Only admins change rules." in texts(at)
    assert not at.text_input and not at.get("form") and not at.tabs
    assert {b.label for b in at.button} <= {"Log out"}


def _write(what: str, target: int) -> None:  # runs inside AppTest
    from diffwatch.app import alerts_data

    fields = {"name": "sneaky", "metric": "error_rate", "window": "5m", "comparison": ">",
              "threshold": "0.5", "recipients": ["x@example.com"]}  # fmt: skip
    if what == "create":
        alerts_data.create_rule(fields)
    elif what == "update":
        alerts_data.update_rule(target, fields)
    elif what == "disable":
        alerts_data.set_enabled(target, False)
    elif what == "delete":
        alerts_data.delete_rule(target)
    else:
        alerts_data.retry_delivery(target, "nobody@example.com", "canary p95")


@pytest.mark.parametrize("what", ["create", "update", "disable", "delete", "retry"])
def test_a_write_by_ops_is_refused_on_the_server(what, conninfo, monkeypatch) -> None:
    oid = add_account(conninfo, "olga", "ops")
    rid = add_rule(conninfo, rule("canary p95"))
    box = failed_delivery(conninfo, rid)
    before = rules_in_db(conninfo)
    at = _as(conninfo, monkeypatch, oid, _write, what, box.failed if what == "retry" else rid)
    action = "alert.retry" if what == "retry" else "rule.set"
    assert f"Not allowed: change '{action}'" in at.error[0].value
    assert rules_in_db(conninfo) == before
    with psycopg.connect(conninfo) as conn:
        assert conn.execute(
            "SELECT status FROM alert_deliveries WHERE id = %s", (box.failed,)
        ).fetchone() == ("failed",)
    assert audit(conninfo, "access.denied")[0][:2] == ("olga", action)


def test_a_rater_is_not_allowed(conninfo, monkeypatch) -> None:
    rid = add_account(conninfo, "rita", "rater")
    add_rule(conninfo, rule("canary p95"))
    at = as_user(conninfo, monkeypatch, rid, page="alerts")
    assert [e.value for e in at.error] == [
        "Not allowed: page 'alerts': needs the role admin or ops; you are rater."
    ]
    assert not at.title and not at.dataframe


# -- deliveries ------------------------------------------------------------------------


@dataclass
class Outbox:
    sent: int
    failed: int


def failed_delivery(conninfo: str, rule_id: int, rule_name: str = "canary p95") -> Outbox:
    """One firing email to two recipients: one sent, one failed for good."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        nid = alert_outbox.enqueue(
            conn, key=f"r{rule_id}-1-firing-0", message_id=f"<diffwatch.r{rule_id}@test>",
            rule_id=rule_id, rule_name=rule_name, kind="firing", severity="warning",
            created_at=NOW - timedelta(minutes=9), value=6120.0, threshold=5000.0,
            subject=f"[diffwatch] FIRING {rule_name}", body_text="b", body_html="<p>b</p>",
            chart_png=None, link=None, recipients=["ops@example.com", "nobody@example.com"],
        )  # fmt: skip
        ids = dict(
            conn.execute(
                "SELECT recipient, id FROM alert_deliveries WHERE notification_id = %s", (nid,)
            ).fetchall()
        )
        conn.execute(
            "UPDATE alert_deliveries SET status = 'sent', attempts = 1, sent_at = %s WHERE id = %s",
            (NOW - timedelta(minutes=8), ids["ops@example.com"]),
        )
        conn.execute(
            "UPDATE alert_deliveries SET status = 'failed', attempts = 5, last_error ="
            " '550 5.1.1 <nobody@example.com>: mailbox unavailable' WHERE id = %s",
            (ids["nobody@example.com"],),
        )
    return Outbox(ids["ops@example.com"], ids["nobody@example.com"])


def test_a_failed_delivery_stands_out_and_an_admin_retries_it(conninfo, monkeypatch) -> None:
    aid = add_account(conninfo, "ada", "admin")
    rid = add_rule(conninfo, rule("canary p95"))
    box = failed_delivery(conninfo, rid)
    at = as_user(conninfo, monkeypatch, aid, page="alerts")
    assert "1 email delivery failed" in at.error[0].value
    sent = frame_with(at, "recipient")
    rows = {r["recipient"]: r for r in sent.to_dict("records")}
    assert rows["nobody@example.com"]["status"] == "failed"
    assert "mailbox unavailable" in rows["nobody@example.com"]["last error"]
    assert rows["nobody@example.com"]["attempts"] == 5
    assert rows["ops@example.com"]["status"] == "sent"
    pick = at.selectbox(key="alerts-retry-pick")
    assert pick.options == [f"#{box.failed} canary p95 (firing) to nobody@example.com"]
    at.button(key="alerts-retry").click().run()
    assert "queued again" in success(at) and not at.error
    with psycopg.connect(conninfo) as conn:
        status = conn.execute(
            "SELECT status, attempts, next_attempt_at <= now() FROM alert_deliveries WHERE id = %s",
            (box.failed,),
        ).fetchone()
    assert status == ("pending", 0, True)
    assert audit(conninfo, "alert.retry") == [
        ("ada", "canary p95", {"delivery_id": box.failed, "recipient": "nobody@example.com"})
    ]
    assert frame_with(at, "recipient").set_index("recipient").loc[
        "nobody@example.com", "status"] == "pending"  # fmt: skip


def test_ops_sees_a_failed_delivery_but_cannot_retry_it(conninfo, monkeypatch) -> None:
    oid = add_account(conninfo, "olga", "ops")
    failed_delivery(conninfo, add_rule(conninfo, rule("canary p95")))
    at = as_user(conninfo, monkeypatch, oid, page="alerts")
    assert "1 email delivery failed" in at.error[0].value
    assert "failed" in list(frame_with(at, "recipient")["status"])
    assert not [b for b in at.button if b.key == "alerts-retry"]
