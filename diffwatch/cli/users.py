"""``diffwatch users``: local accounts and their audit log (registered by diffwatch.cli)."""

# No ``from __future__ import annotations``: typer reads the annotations of the commands.
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

import typer

from diffwatch.cli.common import fail, runtime
from diffwatch.cli.options import AsJson, DbUrl

app = typer.Typer(
    help="Local accounts (roles admin, ops, rater) and the audit log. Passwords are read "
    "from a hidden prompt or with --password-stdin, never from arguments.",
    no_args_is_help=True,
)

ACTOR = "cli"  # who CLI changes are audited as: whoever can reach the database
Username = Annotated[str, typer.Argument(help="Login name; case-insensitive, stored lower-cased.")]
PasswordStdin = Annotated[
    bool,
    typer.Option(
        "--password-stdin",
        help="Read the password as one line from standard input (for scripts) instead of "
        "prompting.",
    ),
]


@app.command("add")
def add(
    username: Username,
    role: Annotated[str, typer.Option(help="admin, ops or rater.")] = "rater",
    display_name: Annotated[
        str | None, typer.Option(help="A name to show instead of the username.")
    ] = None,
    password_stdin: PasswordStdin = False,
    database_url: DbUrl = None,
) -> None:
    """Create an account with a role and a password (argon2id-hashed)."""
    from diffwatch.auth.passwords import hash_password
    from diffwatch.db.queries import users as q

    name, role = _checked(lambda: (q.normalise_username(username), q.check_role(role)))
    with _conn(database_url) as conn:
        if q.get_user_for_login(conn, name) is not None:  # before asking for a password
            _fail_account(q.UserExists(f"user {name!r} already exists (usernames ignore "
                                       "case); pick another name"))  # fmt: skip
        password = _read_password(name, password_stdin)
        _checked(lambda: q.add_user(conn, name, role, hash_password(password),
                                    display_name, actor=ACTOR))  # fmt: skip
    typer.echo(f"added user {name!r} with role {role}")


@app.command("remove")
def remove(username: Username, database_url: DbUrl = None) -> None:
    """Delete an account (its audit rows stay); the last active admin cannot go."""
    from diffwatch.db.queries import users as q

    name = _checked(lambda: q.normalise_username(username))
    with _conn(database_url) as conn:
        _checked(lambda: q.remove_user(conn, name, actor=ACTOR))
    typer.echo(f"removed user {name!r} (its audit log rows are kept)")


@app.command("passwd")
def passwd(
    username: Username, password_stdin: PasswordStdin = False, database_url: DbUrl = None
) -> None:
    """Set a new password; this also clears failed logins and their login delay, and
    ends the account's dashboard sessions."""
    from diffwatch.auth.passwords import hash_password
    from diffwatch.db.queries import users as q

    name = _checked(lambda: q.normalise_username(username))
    with _conn(database_url) as conn:
        if q.get_user_for_login(conn, name) is None:  # before asking for a password
            _fail_account(q.UnknownUser(f"no user {name!r}; `diffwatch users list` shows "
                                        "the accounts"))  # fmt: skip
        password = _read_password(name, password_stdin)
        _checked(lambda: q.set_password(conn, name, hash_password(password), actor=ACTOR))
    typer.echo(f"password of {name!r} changed")


@app.command("role")
def role_(
    username: Username,
    new_role: Annotated[str, typer.Argument(metavar="ROLE", help="admin, ops or rater.")],
    database_url: DbUrl = None,
) -> None:
    """Change an account's role; the last active admin cannot be demoted."""
    from diffwatch.db.queries import users as q

    name, new = _checked(lambda: (q.normalise_username(username), q.check_role(new_role)))
    with _conn(database_url) as conn:
        old = _checked(lambda: q.set_role(conn, name, new, actor=ACTOR))
    typer.echo(f"{name!r} is already {new}" if old == new else f"{name!r}: {old} -> {new}")


def _set_active(username: str, active: bool, database_url: str | None) -> None:
    from diffwatch.db.queries import users as q

    name = _checked(lambda: q.normalise_username(username))
    with _conn(database_url) as conn:
        was = _checked(lambda: q.set_active(conn, name, active, actor=ACTOR))
    state = "active" if active else "inactive"
    typer.echo(f"{name!r} is already {state}" if was == active else f"{name!r} is now {state}")


@app.command("deactivate")
def deactivate(username: Username, database_url: DbUrl = None) -> None:
    """Stop an account from logging in and end its dashboard sessions (ratings and
    history stay); the last active admin cannot be deactivated."""
    _set_active(username, False, database_url)


@app.command("activate")
def activate(username: Username, database_url: DbUrl = None) -> None:
    """Let a deactivated account log in again."""
    _set_active(username, True, database_url)


@app.command("list")
def list_(as_json: AsJson = False, database_url: DbUrl = None) -> None:
    """Show every account: role, state and last login (never password hashes)."""
    from diffwatch.db.queries import users as q

    with _conn(database_url) as conn:
        rows = [asdict(u) for u in q.list_users(conn)]
    if as_json:
        typer.echo(json.dumps({"users": rows}, default=_iso))
        return
    if not rows:
        typer.echo("no accounts yet; add one with `diffwatch users add NAME --role admin`")
        return
    typer.echo(f"{'USERNAME':<24} {'ROLE':<6} {'STATE':<8} {'LAST LOGIN':<20} NAME")
    for u in rows:
        state = "active" if u["active"] else "inactive"
        if u["locked_until"] and u["locked_until"] > datetime.now(u["locked_until"].tzinfo):
            state = "delayed"  # failed logins: its next attempt must wait
        last = u["last_login_at"].strftime("%Y-%m-%d %H:%M") if u["last_login_at"] else "-"
        typer.echo(
            f"{u['username']:<24} {u['role']:<6} {state:<8} {last:<20} "
            f"{u['display_name'] or ''}".rstrip()
        )


@app.command("audit")
def audit_(
    limit: Annotated[int, typer.Option(min=1, help="Rows to show, newest first.")] = 50,
    action: Annotated[
        str | None,
        typer.Option(help="Only this action (login.fail), or a prefix ending in '.' (user.)."),
    ] = None,
    as_json: AsJson = False,
    database_url: DbUrl = None,
) -> None:
    """Show the newest audit log rows: account changes, logins, ratings, rule changes."""
    from diffwatch.db.queries import users as q

    with _conn(database_url) as conn:
        rows = q.recent_audit(conn, limit=limit, action=action)
    if as_json:
        typer.echo(json.dumps({"audit": rows}, default=_iso))
        return
    for r in rows:
        details = json.dumps(r["details"]) if r["details"] else ""
        typer.echo(
            f"{r['at']:%Y-%m-%d %H:%M:%S%z} {r['actor'] or '-':<12} {r['action']:<12} "
            f"{r['target'] or '-'} {details}".rstrip()
        )


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


@contextmanager
def _conn(database_url: str | None) -> Iterator[Any]:
    """An autocommit psycopg connection: each account change is its own transaction."""
    import psycopg

    rt = runtime(database_url)
    with psycopg.connect(rt.conninfo, autocommit=True) as conn:
        yield conn


def _fail_account(exc: Exception) -> None:
    """Exit with the error's message: 2 for bad input, 1 for a conflict with the accounts."""
    from diffwatch.auth.passwords import WeakPassword
    from diffwatch.db.queries import users as q

    bad_input = isinstance(exc, q.InvalidUsername | q.UnknownRole | WeakPassword)
    raise fail(str(exc), 2 if bad_input else 1)


def _checked(fn: Any) -> Any:
    """Run ``fn``, turning account and password errors into clean exits."""
    from diffwatch.auth.passwords import WeakPassword
    from diffwatch.db.queries.users import AccountError

    try:
        return fn()
    except (AccountError, WeakPassword) as exc:
        _fail_account(exc)


def _read_password(username: str, from_stdin: bool) -> str:
    """The new password of ``username`` from stdin or a hidden, confirmed prompt; checked."""
    from diffwatch.auth.passwords import check_policy

    if from_stdin:
        line = sys.stdin.readline()
        password = line.removesuffix("\n").removesuffix("\r")
        if not password:
            raise fail("--password-stdin: standard input had no password line; pipe one in", 2)
    else:
        password = typer.prompt(
            f"Password for {username}", hide_input=True, confirmation_prompt=True
        )
    _checked(lambda: check_policy(password, username))
    return password


def register(root: typer.Typer, name: str) -> None:
    """Add this group to ``root`` as ``name`` (called by ``diffwatch.cli`` when it is run)."""
    root.add_typer(app, name=name)
