"""``diffwatch users`` end to end on real Postgres: accounts, hashes, refusals and audit rows."""

from __future__ import annotations

import json

import psycopg
import pytest
from typer.testing import CliRunner

from diffwatch.auth.passwords import hash_password, verify_password
from diffwatch.cli import build
from diffwatch.db.queries import users as q

PW = "correct horse battery"


def users(db_url: str, *args: str, input: str | None = None, code: int = 0) -> str:
    res = CliRunner().invoke(build(), ["users", *args, "--database-url", db_url], input=input)
    assert res.exit_code == code, res.output
    return res.output


def add(db_url: str, name: str, role: str = "rater", pw: str = PW, code: int = 0) -> str:
    return users(db_url, "add", name, "--role", role, "--password-stdin", input=pw + "\n",
                 code=code)  # fmt: skip


def audit_rows(sql) -> list[tuple]:
    return sql("SELECT actor, action, target, details FROM audit_log ORDER BY id")


def test_add_list_passwd_role_remove_round_trip(db_url, sql) -> None:
    out = add(db_url, "Alice", "admin")
    assert "added user 'alice' with role admin" in out
    add(db_url, "bob")
    users(db_url, "add", "carol", "--role", "ops", "--display-name", "Carol C.",
          "--password-stdin", input=PW + "\n")  # fmt: skip

    (h,) = sql("SELECT password_hash FROM users WHERE username = 'alice'")[0]
    assert h.startswith("$argon2id$") and verify_password(h, PW)

    listed = json.loads(users(db_url, "list", "--json"))["users"]
    assert [(u["username"], u["role"], u["display_name"]) for u in listed] == [
        ("alice", "admin", None),
        ("bob", "rater", None),
        ("carol", "ops", "Carol C."),
    ]
    text = users(db_url, "list")
    assert "carol" in text and "Carol C." in text and "$argon2" not in text

    users(db_url, "passwd", "BOB", "--password-stdin", input="a new long secret\n")
    (h,) = sql("SELECT password_hash FROM users WHERE username = 'bob'")[0]
    assert verify_password(h, "a new long secret") and not verify_password(h, PW)

    assert "'bob': rater -> ops" in users(db_url, "role", "bob", "ops")
    assert "already ops" in users(db_url, "role", "bob", "OPS")
    assert "removed user 'carol'" in users(db_url, "remove", "Carol")
    remaining = sql("SELECT username, role FROM users ORDER BY 1")
    assert remaining == [("alice", "admin"), ("bob", "ops")]

    assert audit_rows(sql) == [
        ("cli", "user.add", "alice", {"role": "admin", "display_name": None}),
        ("cli", "user.add", "bob", {"role": "rater", "display_name": None}),
        ("cli", "user.add", "carol", {"role": "ops", "display_name": "Carol C."}),
        ("cli", "user.passwd", "bob", {}),
        ("cli", "user.role", "bob", {"from": "rater", "to": "ops"}),  # "already" wrote nothing
        ("cli", "user.remove", "carol", {"role": "ops"}),
    ]
    shown = json.loads(users(db_url, "audit", "--action", "user.", "--json"))["audit"]
    assert [r["action"] for r in shown][:2] == ["user.remove", "user.role"]
    assert "user.remove" in users(db_url, "audit")


def test_the_password_prompt_asks_twice_and_hides_input(db_url, sql) -> None:
    out = users(db_url, "add", "dave", input=f"{PW}\n{PW}\n")
    assert PW not in out and "Repeat for confirmation" in out
    (h,) = sql("SELECT password_hash FROM users")[0]
    assert verify_password(h, PW)


def test_list_json_never_prints_hashes(db_url) -> None:
    add(db_url, "erin", "admin")
    out = users(db_url, "list", "--json")
    assert "argon2" not in out and "password" not in out
    assert set(json.loads(out)["users"][0]) >= {"username", "role", "active", "last_login_at"}


def test_usernames_ignore_case_and_duplicates_are_refused(db_url, sql) -> None:
    add(db_url, "Frank")
    out = add(db_url, "FRANK", code=1)
    assert "user 'frank' already exists" in out
    assert sql("SELECT count(*) FROM users") == [(1,)]
    users(db_url, "role", "fRaNk", "ops")
    assert sql("SELECT role FROM users") == [("ops",)]


def test_unknown_user_role_and_bad_names_are_clear(db_url, sql) -> None:
    assert "no user 'ghost'" in users(db_url, "remove", "ghost", code=1)
    assert "no user 'ghost'" in users(db_url, "role", "ghost", "ops", code=1)
    out = users(db_url, "passwd", "ghost", "--password-stdin", input=PW + "\n", code=1)
    assert "no user 'ghost'" in out and "users list" in out
    out = add(db_url, "gina", "superuser", code=2)
    assert "role 'superuser' is unknown; use one of: admin, ops, rater" in out
    out = add(db_url, "has space", code=2)
    assert "username 'has space' is not valid" in out
    assert sql("SELECT count(*) FROM users") == [(0,)] and audit_rows(sql) == []


def test_weak_and_missing_passwords_are_refused(db_url, sql) -> None:
    out = add(db_url, "hank", pw="short", code=2)
    assert "password for user 'hank' refused" in out and "at least 10" in out
    out = add(db_url, "hank", pw="Hank", code=2)
    assert "it is the username" in out
    assert "no password line" in users(db_url, "add", "hank", "--password-stdin", input="", code=2)
    out = users(db_url, "add", "hank", input=f"{PW}\nsomething else\n", code=1)
    assert "do not match" in out.lower()  # click's confirmation mismatch, then no more input
    assert sql("SELECT count(*) FROM users") == [(0,)]
    add(db_url, "hank")
    out = users(db_url, "passwd", "hank", "--password-stdin", input="tiny\n", code=2)
    assert "at least 10" in out
    (h,) = sql("SELECT password_hash FROM users")[0]
    assert verify_password(h, PW)  # unchanged


@pytest.mark.parametrize("common", ["aaaaaaaaaa", "password123"])
def test_common_passwords_are_refused_by_add_and_passwd(common, db_url, sql) -> None:
    out = add(db_url, "hank", pw=common, code=2)
    assert "password for user 'hank' refused" in out and "choose another" in out
    assert sql("SELECT count(*) FROM users") == [(0,)]
    add(db_url, "hank")
    out = users(db_url, "passwd", "hank", "--password-stdin", input=common + "\n", code=2)
    assert "refused" in out and "choose another" in out
    (h,) = sql("SELECT password_hash FROM users")[0]
    assert verify_password(h, PW)  # unchanged


def test_the_last_active_admin_cannot_be_removed_or_demoted(db_url, sql) -> None:
    add(db_url, "root", "admin")
    assert "last active admin; refusing to remove it" in users(db_url, "remove", "root", code=1)
    out = users(db_url, "role", "root", "ops", code=1)
    assert "last active admin; refusing to make it ops" in out and "--role admin" in out
    add(db_url, "second", "admin")
    users(db_url, "role", "root", "rater")
    assert "refusing to remove" in users(db_url, "remove", "second", code=1)
    sql("UPDATE users SET active = false WHERE username = 'second'")  # an inactive admin
    users(db_url, "role", "root", "admin")
    users(db_url, "remove", "second")  # inactive admins do not count, so this may go
    assert sql("SELECT username, role FROM users") == [("root", "admin")]
    assert [r[1] for r in audit_rows(sql)] == ["user.add", "user.add", "user.role",
                                               "user.role", "user.remove"]  # fmt: skip


def test_removed_accounts_keep_their_audit_rows(db_url, sql) -> None:
    add(db_url, "admin1", "admin")
    add(db_url, "ivy")
    users(db_url, "remove", "ivy")
    assert [r[:3] for r in audit_rows(sql) if r[2] == "ivy"] == [
        ("cli", "user.add", "ivy"),
        ("cli", "user.remove", "ivy"),
    ]


def test_login_bookkeeping_counts_failures_and_delays(conninfo, sql) -> None:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        q.add_user(conn, "jo", "rater", hash_password(PW), actor="system")
        for i in range(1, 3):
            out = q.record_login(conn, "JO", ok=False, free_failures=3, delay_s=60)
            assert out is not None and out.failed_logins == i and out.locked_until is None
        out = q.record_login(conn, "jo", ok=False, free_failures=3, delay_s=60)
        assert out is not None and out.failed_logins == 3 and out.locked_until is not None
        user = q.get_user_for_login(conn, "Jo")
        assert user is not None and user.locked and verify_password(user.password_hash, PW)
        assert 55 < user.wait_s <= 60
        out = q.record_login(conn, "jo", ok=False, free_failures=3, delay_s=60, max_delay_s=100)
        user = q.get_user_for_login(conn, "jo")  # doubled to 120 s, capped at 100 s
        assert user is not None and 95 < user.wait_s <= 100
        assert q.record_login(conn, "nobody", ok=False) is None
        ok = q.record_login(conn, "jo", ok=True)
        assert ok is not None and ok.failed_logins == 0 and ok.locked_until is None
        user = q.get_user_for_login(conn, "jo")
        assert user is not None and not user.locked
        assert q.get_user_for_login(conn, "no such user!") is None
        fails = q.recent_audit(conn, action="login.fail")
    assert len(fails) == 5 and fails[0]["target"] == "nobody"
    assert fails[0]["details"] == {"reason": "unknown user"} and fails[0]["actor"] is None
    assert sql("SELECT actor, target FROM audit_log WHERE action = 'login.ok'") == [("jo", "jo")]
    assert sql("SELECT last_login_at IS NOT NULL FROM users") == [(True,)]


def test_an_account_change_and_its_audit_row_commit_together(conninfo, sql) -> None:
    # Make the audit insert of a removal fail: the removal must be undone with it.
    sql("ALTER TABLE audit_log ADD CONSTRAINT test_no_remove CHECK (action <> 'user.remove')")
    try:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            q.add_user(conn, "kim", "rater", hash_password(PW))
            with pytest.raises(psycopg.errors.CheckViolation):
                q.remove_user(conn, "kim")
    finally:
        sql("ALTER TABLE audit_log DROP CONSTRAINT test_no_remove")
    assert sql("SELECT username FROM users") == [("kim",)]
    assert [r[1] for r in audit_rows(sql)] == ["user.add"]


def test_deactivate_and_activate(db_url, sql) -> None:
    add(db_url, "ada", "admin")
    add(db_url, "bob")
    assert "'bob' is now inactive" in users(db_url, "deactivate", "BOB")
    assert "'bob' is already inactive" in users(db_url, "deactivate", "bob")
    assert sql("SELECT active FROM users WHERE username = 'bob'") == [(False,)]
    assert "inactive" in users(db_url, "list")
    assert "last active admin" in users(db_url, "deactivate", "ada", code=1)
    assert "'bob' is now active" in users(db_url, "activate", "bob")
    assert [r[1:3] for r in audit_rows(sql) if r[1] == "user.active"] == [
        ("user.active", "bob"),
        ("user.active", "bob"),
    ]
