"""The admin page: accounts, role and active changes by an admin, and the audit log."""

from __future__ import annotations

import psycopg
import pytest
from streamlit.testing.v1 import AppTest

from diffwatch.auth.login import attempt
from tests.app.accounts import PW, add_account, as_user, shown
from tests.app.test_login import _as, audit


def test_admin_sees_accounts_without_hashes_and_the_audit_log(conninfo, monkeypatch) -> None:
    aid = add_account(conninfo, "ada", "admin")
    add_account(conninfo, "rita", "rater")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        attempt(conn, "rita", "wrong password!", "10.1.2.3")
    at = as_user(conninfo, monkeypatch, aid, page="admin")
    assert at.title[0].value == "Accounts & audit log"
    accounts, log = at.dataframe[0].value, at.dataframe[1].value
    assert sorted(accounts["username"]) == ["ada", "rita"]
    assert not any("hash" in c for c in accounts.columns)
    assert "$argon2" not in accounts.to_csv()
    fail = log[log["action"] == "login.fail"].iloc[0]
    assert fail["target"] == "rita" and '"ip": "10.1.2.3"' in fail["details"]
    at.selectbox[2].select("logins (ok, failed, throttled)").run()  # the audit filter
    assert set(at.dataframe[1].value["action"]) == {"login.fail"}


def test_admin_changes_a_role_and_deactivates_and_both_are_audited(conninfo, monkeypatch):
    aid = add_account(conninfo, "ada", "admin")
    add_account(conninfo, "rita", "rater")
    at = as_user(conninfo, monkeypatch, aid, page="admin")
    at.selectbox[0].select("rita").run()
    assert at.selectbox[1].value == "rater" and at.checkbox[0].value is True
    at.selectbox[1].select("ops")
    at.checkbox[0].uncheck()
    at.button[0].click().run()  # the form's "Save account"
    assert shown(at.success[0].value) == "rita: role rater → ops, deactivated"
    assert [(a, t, d) for a, t, d in audit(conninfo, "user.role")] == [
        ("ada", "rita", {"from": "rater", "to": "ops"})
    ]
    assert audit(conninfo, "user.active") == [("ada", "rita", {"from": True, "to": False})]
    with psycopg.connect(conninfo, autocommit=True) as conn:
        assert attempt(conn, "rita", PW, "10.0.0.1").reason == "inactive"


def test_the_last_admin_cannot_demote_themself(conninfo, monkeypatch) -> None:
    aid = add_account(conninfo, "ada", "admin")
    at = as_user(conninfo, monkeypatch, aid, page="admin")
    at.selectbox[1].select("ops")
    at.button[0].click().run()
    assert "last active admin" in shown(at.error[0].value) and not at.success
    assert audit(conninfo, "user.role") == []


def _change() -> None:  # runs inside AppTest
    from diffwatch.app import admin_data

    admin_data.change_account("ada", "rater", False)


@pytest.mark.parametrize("role", ["ops", "rater"])
def test_others_cannot_change_accounts_through_the_write(role, conninfo, monkeypatch) -> None:
    add_account(conninfo, "ada", "admin")
    uid = add_account(conninfo, "sam", role)
    at: AppTest = _as(conninfo, monkeypatch, uid, _change)
    assert "Not allowed: change 'user.role'" in at.error[0].value
    with psycopg.connect(conninfo) as conn:
        assert conn.execute("SELECT role, active FROM users WHERE username = 'ada'").fetchone() == (
            "admin",
            True,
        )
