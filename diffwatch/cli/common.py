"""What every command needs: the database, errors for a person, summaries, dates, signals.

Imports only ``typer`` and the standard library at import time.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import typer

from diffwatch.periodic import stop_on_signals

if TYPE_CHECKING:
    from diffwatch.context import Runtime

__all__ = [
    "aware", "emit_summary", "error_exit", "fail", "iso_time", "runtime", "stop_on_signals",
]  # fmt: skip


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print an error for a person and return the Exit to raise."""
    typer.secho(f"error: {message}", fg="red", err=True)
    return typer.Exit(code)


def error_exit(exc: BaseException) -> typer.Exit:
    """Exit 2 for a job's error (1 is a gate's "fail"); an unexpected one also prints its
    traceback, for the CI log."""
    if not isinstance(exc, ValueError | FileNotFoundError | RuntimeError):
        import traceback

        traceback.print_exc()
        return fail(f"{type(exc).__name__}: {exc}", 2)
    return fail(str(exc), 2)


def aware(t: datetime | None) -> datetime | None:
    """A datetime option as given, or read as UTC when it has no offset."""
    return t if t is None or t.tzinfo else t.replace(tzinfo=UTC)


def iso_time(value: str | None, option: str) -> datetime | None:
    """An ISO 8601 time option with a UTC offset (None stays None); exit 2 with what to
    write when it is not one."""
    if value is None:
        return None
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        raise fail(
            f"{option} {value!r} is not an ISO 8601 time; write it like 2026-01-31T12:00:00+00:00",
            2,
        ) from None
    if ts.tzinfo is None:
        raise fail(f"{option} {value!r} has no UTC offset; add one, e.g. {value}+00:00", 2)
    return ts


def emit_summary(d: dict[str, object], as_json: bool, text: str) -> None:
    """Print a batch command's summary: one JSON object with --json, else ``text``."""
    typer.echo(json.dumps(d) if as_json else text)


def runtime(database_url: str | None, migrate: bool = True, wait: bool = False) -> Runtime:
    """Resolve the database and check its schema, with errors a person can act on.

    ``wait``: a long-running command (``--follow``) waits for an unreachable database
    instead of failing, logging one line about it.
    """
    from sqlalchemy.exc import OperationalError
    from tenacity import Retrying, retry_if_exception_type, wait_exponential

    from diffwatch.context import SchemaOutOfDate, ensure_schema
    from diffwatch.context import runtime as resolve
    from diffwatch.errors import first_line

    def attempt() -> Runtime:
        rt = resolve(database_url)
        if migrate:
            ensure_schema(rt)
        return rt

    waited = []

    def waiting(rs: object) -> None:
        if getattr(rs, "attempt_number", 0) == 1:
            waited.append(True)
            logging.getLogger("diffwatch").warning(
                "database unavailable; waiting for it (retrying with backoff up to 30 s)"
            )

    try:
        if not wait:
            return attempt()
        retrying = Retrying(
            retry=retry_if_exception_type(OperationalError),
            wait=wait_exponential(multiplier=0.2, max=30),
            before_sleep=waiting,
            reraise=True,
        )
        rt = retrying(attempt)
        if waited:  # one line when it goes away, one when it is back
            logging.getLogger("diffwatch").warning("database reachable again; starting")
        return rt
    except SchemaOutOfDate as exc:
        raise fail(str(exc)) from None
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    except OperationalError as exc:
        raise fail(f"database unavailable: {first_line(exc.orig or exc)}") from None
