"""``diffwatch alerts``: load and list rules, evaluate them, deliver the emails.

The alert pass, its follow loop and rule loading live in ``diffwatch.alerts.run``. See
docs/alerts.md.
"""

# No ``from __future__ import annotations``: typer reads the annotations of the commands.
import contextlib
import getpass
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from diffwatch.cli.common import aware, emit_summary, fail, runtime, stop_on_signals
from diffwatch.cli.options import AsJson, DbUrl

app = typer.Typer(
    help="Alert rules and emails: rules on quality, safety, cost, latency, errors, GPU idle, "
    "drift and human ratings, evaluated on a schedule and sent over SMTP (docs/alerts.md).",
    no_args_is_help=True,
)


def _actor() -> str:
    with contextlib.suppress(OSError, KeyError):
        return f"cli:{getpass.getuser()}"
    return "cli"


def _summary(d: dict[str, Any]) -> str:
    states = ", ".join(f"{n} {s}" for s, n in sorted(d["states"].items())) or "none"
    emails = ", ".join(f"{n} {k}" for k, n in d["emails"].items()) or "no"
    line = (
        f"{d['rules']} rule(s) at {d['at']}: {states}; {d['changes']} change(s), "
        f"{emails} email(s) queued"
    )
    dl = d.get("delivery")
    if dl is not None:
        done = ", ".join(f"{k} {v}" for k, v in dl.items() if v and k != "errors")
        line += f"; delivery: {done or 'nothing due'}"
        line += "".join(f"\n  delivery error: {e}" for e in dl["errors"])
    for err in d["errors"]:
        line += f"\n  error: {err}"
    return line


@app.command("evaluate")
def evaluate_cmd(
    follow: Annotated[
        bool,
        typer.Option(
            "--follow/--once",
            "-f",
            help="Keep evaluating every --interval seconds (until Ctrl-C/SIGTERM), or "
            "evaluate once and exit.",
        ),
    ] = False,
    interval: Annotated[
        float, typer.Option(min=1, help="Seconds between passes with --follow.")
    ] = 60.0,
    at: Annotated[
        datetime | None,
        typer.Option(
            help="Evaluate as of this time (ISO 8601, UTC when no offset; default: now). "
            "For replaying history; only with --once.",
            show_default=False,
        ),
    ] = None,
    deliver: Annotated[
        bool, typer.Option("--deliver/--no-deliver", help="Also send the emails that are due.")
    ] = True,
    as_json: AsJson = False,
    database_url: DbUrl = None,
) -> None:
    """Evaluate every enabled rule: move its state, queue firing, repeat and resolved
    emails in the outbox, then deliver what is due over SMTP."""
    from diffwatch.alerts import run
    from diffwatch.errors import first_line
    from diffwatch.outage import DB_DOWN_ERRORS

    if follow and at is not None:
        raise fail("--at replays one moment; use it with --once, not --follow", 2)
    rt = runtime(database_url, wait=follow)
    url = rt.settings.dashboard_url
    if not follow:
        try:
            d = run.evaluate_and_deliver(rt.conninfo, aware(at) or datetime.now(UTC), deliver, url)
        except DB_DOWN_ERRORS as exc:
            raise fail(f"database unavailable: {first_line(exc)}") from None
        emit_summary(d, as_json, _summary(d))
        if d["errors"]:
            raise typer.Exit(1)
        return
    passes = run.follow(
        rt.conninfo, url, deliver=deliver, interval_s=interval, stop=stop_on_signals()
    )
    for d in passes:
        if as_json:
            typer.echo(json.dumps(d))
        elif d["changes"] or d["errors"] or any((d.get("delivery") or {}).values()):
            typer.echo(_summary(d))


@app.command("deliver")
def deliver_cmd(as_json: AsJson = False, database_url: DbUrl = None) -> None:
    """Send the outbox's due emails once (retries with backoff; 5xx answers fail)."""
    from diffwatch.alerts import run

    rt = runtime(database_url)
    d = run.deliver(rt.conninfo, datetime.now(UTC))
    text = ", ".join(f"{k} {v}" for k, v in d.items() if k != "errors")
    emit_summary(d, as_json, text + "".join(f"\n  error: {e}" for e in d["errors"]))


@app.command("load")
def load_cmd(
    path: Annotated[Path, typer.Argument(help="A YAML rules file (docs/alerts.md).")],
    prune: Annotated[
        bool,
        typer.Option(
            "--prune", help="Delete rules loaded earlier from this file that it no longer has."
        ),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate and show the changes; store nothing.")
    ] = False,
    as_json: AsJson = False,
    database_url: DbUrl = None,
) -> None:
    """Create or update rules from a YAML file, matched by name (audited as rule.load)."""
    from diffwatch.alerts.run import store_rules
    from diffwatch.model.alert_rules import RuleFileError, load_rules_file

    # The rules' source names the file; spelled one way for every cwd and spelling, so
    # `--prune` finds the rules that an earlier load of the same file stored.
    path = path.expanduser().absolute()
    try:
        rules = load_rules_file(path)
    except RuleFileError as exc:
        raise fail(str(exc), 2) from None
    rt = runtime(database_url)
    d = store_rules(rt.conninfo, rules, path, _actor(), prune=prune, dry_run=dry_run)
    verb = "would change" if dry_run else "loaded"
    emit_summary(
        d,
        as_json,
        f"{verb} {path}: {len(d['created'])} created, {len(d['updated'])} updated, "
        f"{len(d['unchanged'])} unchanged, {len(d['removed'])} removed",
    )


@app.command("export")
def export_cmd(database_url: DbUrl = None) -> None:
    """Print every rule as a YAML rules file (what ``alerts load`` reads)."""
    import psycopg

    from diffwatch.db.queries import alert_rules as q
    from diffwatch.model.alert_rules import dump_rules

    rt = runtime(database_url)
    with psycopg.connect(rt.conninfo) as conn:
        typer.echo(dump_rules(q.list_rules(conn)), nl=False)


@app.command("list")
def list_cmd(as_json: AsJson = False, database_url: DbUrl = None) -> None:
    """Every rule with its state, value and last evaluation, firing ones first."""
    import psycopg

    from diffwatch.db.queries import alert_rules as q
    from diffwatch.model.alert_metrics import METRICS

    rt = runtime(database_url)
    with psycopg.connect(rt.conninfo) as conn:
        rows = q.statuses(conn)
    if as_json:
        typer.echo(json.dumps([_status_dict(s) for s in rows]))
        return
    if not rows:
        typer.echo("no alert rules; add some with `diffwatch alerts load rules.yaml`")
    for s in rows:
        value = METRICS[s.rule.metric].format(s.value) if s.evaluated_at else "-"
        off = "" if s.rule.enabled else " [disabled]"
        typer.echo(f"{s.state:<16} {s.rule.name}{off}: {s.rule.describe()}; now {value}")
        if s.error:
            typer.echo(f"{'':<16} last error: {s.error}")


def _status_dict(s: Any) -> dict[str, Any]:
    return {
        "name": s.rule.name,
        "rule": s.rule.describe(),
        "enabled": s.rule.enabled,
        "state": s.state,
        "since": s.since.isoformat() if s.since else None,
        "value": s.value,
        "evaluated_at": s.evaluated_at.isoformat() if s.evaluated_at else None,
        "error": s.error,
    }


@app.command("outbox")
def outbox_cmd(
    status: Annotated[
        str | None, typer.Option(help="Only this status: pending, sending, sent or failed.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    as_json: AsJson = False,
    database_url: DbUrl = None,
) -> None:
    """The newest deliveries (email, webhooks, Alertmanager) with their status, attempts and
    last error; channel URLs show only scheme, host and port (they may hold secrets)."""
    import dataclasses

    import psycopg

    from diffwatch.db.queries import alert_outbox
    from diffwatch.model.alert_rules import redact_target

    if status not in (None, "pending", "sending", "sent", "failed"):
        raise fail(f"--status {status!r}: choose pending, sending, sent or failed", 2)
    rt = runtime(database_url)
    with psycopg.connect(rt.conninfo) as conn:
        rows = alert_outbox.recent(conn, limit=limit, status=status)
    dicts = [r if isinstance(r, dict) else dataclasses.asdict(r) for r in rows]
    for d in dicts:
        d["recipient"] = redact_target(d["recipient"])
    if as_json:
        typer.echo(json.dumps(dicts, default=str))
        return
    for r in dicts:
        err = f" ({r['last_error']})" if r.get("last_error") else ""
        typer.echo(
            f"{r['created_at']:%Y-%m-%d %H:%M} {r['status']:<8} {r['kind']:<8} "
            f"{r['recipient']}: {r['subject']} [attempts {r['attempts']}]{err}"
        )


@app.command("test-email")
def test_email_cmd(
    to: Annotated[str, typer.Option("--to", help="Send a test email to this address.")],
) -> None:
    """Check the SMTP settings (DIFFWATCH_SMTP_*) by sending one email now."""
    from diffwatch.alerts.deliver import send_test_email as send
    from diffwatch.alerts.smtp import PermanentError, SmtpSettings, TransientError

    smtp = SmtpSettings()
    try:
        send(smtp, to)
    except (TransientError, PermanentError) as exc:
        raise fail(f"SMTP {smtp.host}:{smtp.port} ({smtp.security}): {exc}") from None
    typer.echo(f"sent a test email to {to} through {smtp.host}:{smtp.port}")


def register(root: typer.Typer, name: str) -> None:
    """Add this group to ``root`` as ``name`` (called by ``diffwatch.cli`` when it is run)."""
    root.add_typer(app, name=name)
