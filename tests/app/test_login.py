"""Login, sessions and role enforcement of the dashboard, on real Postgres (AppTest).

The app runs whole (``diffwatch/app/main.py``): the navigation per role, the guard on every page,
the guard on every write, and the audit rows they leave.
"""

from __future__ import annotations

import time

import psycopg
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from diffwatch.app.session import TOKEN_KEY
from diffwatch.auth.login import WRONG, LoginLimits, attempt
from diffwatch.auth.passwords import hash_password
from diffwatch.db.queries import users as q
from tests.app.accounts import PW, add_account, as_user, texts

DASHBOARD = ["overview", "cost", "latency", "gpu", "quality", "versions", "releases",
             "explorer", "drift", "fairness", "alerts", "ratings"]  # fmt: skip


def audit(conninfo: str, action: str) -> list[tuple]:
    with psycopg.connect(conninfo) as conn:
        return conn.execute(
            "SELECT actor, target, details FROM audit_log WHERE action = %s ORDER BY id", (action,)
        ).fetchall()


def title(at: AppTest) -> str:
    return at.title[0].value if at.title else ""


def login_form(at: AppTest, username: str, password: str) -> AppTest:
    at.text_input[0].input(username)
    at.text_input[1].input(password)
    at.button[0].click()  # the form's submit button
    return at.run()


# -- anonymous -------------------------------------------------------------------------


@pytest.mark.parametrize("page", [None, "overview", "cost", "review", "admin", "ratings"])
def test_anonymous_sees_only_the_login_page(page, conninfo, monkeypatch) -> None:
    """At every address; after logging in there, that page opens (a shared link works)."""
    if page is None:  # a fresh install says how to make the first admin
        at = as_user(conninfo, monkeypatch, None)
        assert "diffwatch users add NAME --role admin" in at.warning[0].value
    add_account(conninfo, "ada", "admin")
    at = as_user(conninfo, monkeypatch, None, page=page)
    assert title(at) == "Log in to diffwatch" and not at.warning
    shown = texts(at)
    for other in ("Overview", "Cost", "Review queue", "Accounts", "Filters", "Logged in"):
        assert other not in shown, other
    assert len(at.get("plotly_chart")) == 0 and len(at.dataframe) == 0
    if page in ("cost", "admin"):
        at = login_form(at, "ada", PW)
        assert title(at) == {"cost": "Cost", "admin": "Accounts & audit log"}[page]


# -- the login form --------------------------------------------------------------------


def test_login_form_logs_in_and_audits_the_address(conninfo, monkeypatch) -> None:
    add_account(conninfo, "Olga", "ops")
    at = as_user(conninfo, monkeypatch, None)
    at = login_form(at, "OLGA", PW)
    assert not at.exception
    assert title(at) == "Overview" and "Logged in as olga (ops)" in texts(at)
    assert at.session_state[TOKEN_KEY]
    (actor, target, details), = audit(conninfo, "login.ok")  # fmt: skip
    assert (actor, target, details["method"]) == ("olga", "olga", "password")
    assert "ip" in details


def test_wrong_password_and_unknown_user_get_the_same_answer(conninfo, monkeypatch) -> None:
    add_account(conninfo, "olga", "ops")
    for name, pw in (("olga", "not the password"), ("nobody", PW)):
        at = login_form(as_user(conninfo, monkeypatch, None), name, pw)
        assert title(at) == "Log in to diffwatch"
        assert [e.value for e in at.error] == [WRONG]
    fails = audit(conninfo, "login.fail")
    assert [(a, t) for a, t, _ in fails] == [(None, "olga"), (None, "nobody")]
    assert fails[1][2]["reason"] == "unknown user"


def test_locked_unknown_and_wrong_get_the_same_answer(conninfo, monkeypatch) -> None:
    """Five failures delay the account: even the right password then gets the answer that a
    wrong password and an unknown name get, so the form tells nobody which accounts exist."""
    add_account(conninfo, "olga", "ops")
    monkeypatch.setenv("DIFFWATCH_LOGIN_DELAY_S", "60")  # the wait outlasts the test
    for _ in range(5):
        login_form(as_user(conninfo, monkeypatch, None), "olga", "wrong password!")
    answers = {}
    for name, pw in (("olga", PW), ("olga", "wrong again!"), ("nobody", "wrong again!")):
        at = login_form(as_user(conninfo, monkeypatch, None), name, pw)
        assert title(at) == "Log in to diffwatch"
        answers[(name, pw)] = [e.value for e in at.error]
    assert list(answers.values()) == [[WRONG]] * 3, answers
    throttled = audit(conninfo, "login.throttled")
    assert [(t, d["reason"]) for _, t, d in throttled] == [("olga", "account")] * 2
    assert throttled[0][2]["retry_in_s"] > 0  # the detail is in the audit log only


def test_failures_delay_the_account_progressively_and_passwd_clears_it(conninfo) -> None:
    """No hard lock: after three failures each further one doubles the wait (capped), and
    the right password works once the wait is over; an admin's password reset clears it."""
    add_account(conninfo, "olga", "ops")
    lim = LoginLimits(free_failures=3, delay_s=1.0, max_delay_s=2.0)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for _ in range(3):
            assert attempt(conn, "olga", "wrong password!", "10.0.0.1", lim).reason == "wrong"
        early = attempt(conn, "olga", PW, "10.0.0.2", lim)  # another address: same account
        assert (early.ok, early.reason, early.message) == (False, "throttled", WRONG)
        time.sleep(1.1)
        assert attempt(conn, "olga", "wrong password!", "10.0.0.1", lim).reason == "wrong"
        time.sleep(1.1)  # the first wait was 1 s; the second is 2 s
        assert attempt(conn, "olga", PW, "10.0.0.1", lim).reason == "throttled"
        time.sleep(1.0)
        assert attempt(conn, "olga", PW, "10.0.0.1", lim).ok  # and a success starts afresh
        for _ in range(3):
            attempt(conn, "olga", "wrong password!", "10.0.0.1", lim)
        assert attempt(conn, "olga", PW, "10.0.0.1", lim).reason == "throttled"
        q.set_password(conn, "olga", hash_password(PW), actor="ada")
        assert attempt(conn, "olga", PW, "10.0.0.1", lim).ok


def test_failures_from_one_address_are_throttled_there_only(conninfo) -> None:
    add_account(conninfo, "olga", "ops")
    lim = LoginLimits(free_failures=100, address_free_failures=3, delay_s=60)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for name in ("olga", "bob", "carl"):  # password spraying over usernames
            assert attempt(conn, name, "Summer2026!!", "10.0.0.9", lim).reason == "wrong"
        blocked = attempt(conn, "olga", PW, "10.0.0.9", lim)
        assert (blocked.ok, blocked.reason, blocked.message) == (False, "throttled", WRONG)
        assert attempt(conn, "olga", PW, "10.0.0.10", lim).ok
        # IPv6: one subscriber's /64 is one address
        for i in range(3):
            attempt(conn, f"v6user{i}", "Summer2026!!", f"2001:db8:1:2::{i + 1}", lim)
        assert attempt(conn, "olga", PW, "2001:db8:1:2:ffff::9", lim).reason == "throttled"
        assert attempt(conn, "olga", PW, "2001:db8:1:3::1", lim).ok
    rows = audit(conninfo, "login.throttled")
    assert [(d["ip"], d["reason"]) for _, _, d in rows] == [
        ("10.0.0.9", "address"),
        ("2001:db8:1:2:ffff::9", "address"),
    ]


def test_attempts_without_an_address_share_no_bucket(conninfo) -> None:
    """Thirty failures from clients whose address is unknown, over thirty names, do not
    keep the admin out: attempts without an address are not counted together."""
    add_account(conninfo, "ada", "admin")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for i in range(30):
            assert attempt(conn, f"user{i}", "Summer2026!!", None).reason == "wrong"
        assert attempt(conn, "ada", PW, None).ok


def test_a_deactivated_account_cannot_log_in(conninfo) -> None:
    add_account(conninfo, "ada", "admin")
    add_account(conninfo, "rita", "rater")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        q.set_active(conn, "rita", False, actor="ada")
        res = attempt(conn, "rita", PW, "10.0.0.1")
        assert (res.ok, res.reason) == (False, "inactive")
        with pytest.raises(q.LastAdmin):
            q.set_active(conn, "ada", False, actor="ada")


# -- roles -----------------------------------------------------------------------------


def test_a_rater_typing_another_page_address_is_refused(conninfo, monkeypatch):
    rid = add_account(conninfo, "rita", "rater")
    assert title(as_user(conninfo, monkeypatch, rid)) == "Review queue"  # the default
    for page in [*DASHBOARD, "admin"]:
        at = as_user(conninfo, monkeypatch, rid, page=page)
        assert [e.value for e in at.error] == [
            f"Not allowed: page {page!r}: needs the role "
            f"{'admin' if page == 'admin' else 'admin or ops'}; you are rater."
        ], page
        assert title(at) == "" and "Filters" not in texts(at)  # nothing of the page drawn
        assert not at.get("plotly_chart") and not at.dataframe
    assert len(audit(conninfo, "access.denied")) == len(DASHBOARD) + 1


@pytest.mark.parametrize(("role", "pages"), [
    ("ops", [*DASHBOARD, "review", "compare", "my-ratings"]),
    ("admin", [*DASHBOARD, "review", "compare", "my-ratings", "admin"]),
])  # fmt: skip
def test_staff_open_their_pages_and_ops_not_admin(role, pages, conninfo, monkeypatch) -> None:
    from diffwatch.app.main import PAGES

    uid = add_account(conninfo, "sam", role)
    titles = {url: t for url, t, _, _ in PAGES}
    for page in pages:
        assert title(as_user(conninfo, monkeypatch, uid, page=page)) == titles[page], page
    if role == "ops":
        at = as_user(conninfo, monkeypatch, uid, page="admin")
        assert title(at) == "" and "Not allowed: page 'admin'" in at.error[0].value


def _guarded_page(url_path: str, module: str) -> None:  # runs inside AppTest
    from diffwatch.app.main import guarded

    guarded(url_path, module)()


def _as(conninfo: str, monkeypatch, uid: int, fn, *args) -> AppTest:
    from diffwatch.db.queries.sessions import create_session

    monkeypatch.setenv("DIFFWATCH_APP_CONNINFO", conninfo)
    st.cache_data.clear()
    at = AppTest.from_function(fn, args=args, default_timeout=60)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        at.session_state[TOKEN_KEY] = create_session(conn, uid, None, 3600)
    return at.run()


@pytest.mark.parametrize(
    ("page", "module"),
    [("cost", "cost"), ("admin", "admin"), ("ratings", "ratings"), ("drift", "drift")],
)
def test_the_page_guard_refuses_a_rater_on_the_server(page, module, conninfo, monkeypatch):
    """Even reached directly (not through the navigation), a page draws nothing for a rater."""
    rid = add_account(conninfo, "rita", "rater")
    at = _as(conninfo, monkeypatch, rid, _guarded_page, page, module)
    assert [e.value for e in at.error] == [
        f"Not allowed: page {page!r}: needs the role "
        f"{'admin' if page == 'admin' else 'admin or ops'}; you are rater."
    ]
    assert not at.title and not at.get("plotly_chart") and not at.dataframe
    (actor, target, _), = audit(conninfo, "access.denied")  # fmt: skip
    assert (actor, target) == ("rita", f"page {page}")


def _set_price() -> None:  # runs inside AppTest
    import streamlit as st

    from diffwatch.app import data

    data.set_price("H200", 9.99, "from a test")
    st.success("stored")


@pytest.mark.parametrize("role", ["rater", "ops"])
def test_only_admins_write_prices(role, conninfo, monkeypatch) -> None:
    uid = add_account(conninfo, "sam", role)
    at = _as(conninfo, monkeypatch, uid, _set_price)
    assert "Not allowed: change 'price.set'" in at.error[0].value and not at.success
    with psycopg.connect(conninfo) as conn:
        assert (
            conn.execute("SELECT count(*) FROM gpu_prices WHERE gpu_type = 'H200'").fetchone()[0]
            == 0
        )


def test_an_admin_price_change_is_audited_with_the_old_price(conninfo, monkeypatch) -> None:
    uid = add_account(conninfo, "ada", "admin")
    at = _as(conninfo, monkeypatch, uid, _set_price)
    assert not at.exception and not at.error, (at.exception, at.error)
    assert at.success[0].value == "stored"
    at = _as(conninfo, monkeypatch, uid, _set_price)
    rows = audit(conninfo, "price.set")
    assert [(a, t, d["usd_per_hour"], d["old_usd_per_hour"]) for a, t, d in rows] == [
        ("ada", "H200", 9.99, None),
        ("ada", "H200", 9.99, 9.99),
    ]


# -- sessions --------------------------------------------------------------------------


def test_role_changes_password_changes_and_deactivation_apply_on_the_next_click(
    conninfo, monkeypatch
) -> None:
    add_account(conninfo, "ada", "admin")
    uid = add_account(conninfo, "sam", "ops")
    at = as_user(conninfo, monkeypatch, uid, page="cost")
    assert title(at) == "Cost"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        q.set_role(conn, "sam", "rater", actor="ada")
    at.run()  # still on /cost, now refused
    assert title(at) == "" and "Not allowed: page 'cost'" in at.error[0].value
    with psycopg.connect(conninfo, autocommit=True) as conn:
        q.set_password(conn, "sam", hash_password("another long secret"), actor="ada")
    at.run()
    assert title(at) == "Log in to diffwatch"
    assert "Your session ended" in at.info[0].value
    at = as_user(conninfo, monkeypatch, uid, page="review")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        q.set_active(conn, "sam", False, actor="ada")
    assert title(at.run()) == "Log in to diffwatch"


def test_logout_ends_the_session_in_the_database(conninfo, monkeypatch) -> None:
    uid = add_account(conninfo, "olga", "ops")
    at = as_user(conninfo, monkeypatch, uid)
    token = at.session_state[TOKEN_KEY]
    at.sidebar.button(key="logout").click().run()
    assert title(at) == "Log in to diffwatch" and "You are logged out." in at.info[0].value
    with psycopg.connect(conninfo) as conn:
        from diffwatch.db.queries.sessions import session_user

        assert session_user(conn, token, 3600) is None
    assert [a for a, _, _ in audit(conninfo, "logout")] == ["olga"]


def test_single_sign_on_maps_the_providers_email_to_an_active_local_account(conninfo) -> None:
    from diffwatch.auth.login import single_sign_on

    add_account(conninfo, "alice@example.com", "ops")
    add_account(conninfo, "gone@example.com", "rater")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        q.set_active(conn, "gone@example.com", False, actor="test")
        ok = single_sign_on(conn, "Alice@Example.com", "10.0.0.5")
        assert (
            ok.ok and ok.user and (ok.user.username, ok.user.role) == ("alice@example.com", "ops")
        )
        for email in ("mallory@example.com", "gone@example.com", None):
            res = single_sign_on(conn, email, "10.0.0.5")
            assert not res.ok and res.user is None, email
    assert [d["method"] for _, _, d in audit(conninfo, "login.ok")] == ["oidc"]
    reasons = [d["reason"] for _, _, d in audit(conninfo, "login.fail")]
    assert reasons == ["no account", "no account", "no e-mail from provider"]
