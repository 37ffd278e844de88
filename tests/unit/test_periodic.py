"""The shared loop of the --follow forms: once, on a period until stopped, through outages."""

from __future__ import annotations

import logging
import threading

import psycopg
import pytest

from diffwatch.outage import OutageRetry
from diffwatch.periodic import every


def test_without_retrying_the_step_runs_once_and_errors_reach_the_caller() -> None:
    stop = threading.Event()
    assert list(every(lambda: 7, 60.0, stop)) == [7]

    def down() -> int:
        raise psycopg.OperationalError("connection refused")

    with pytest.raises(psycopg.OperationalError):
        list(every(down, 60.0, stop))


def test_following_runs_until_stop_and_rides_out_an_outage(caplog) -> None:
    stop = threading.Event()
    calls: list[int] = []

    def step() -> int:
        calls.append(1)
        if len(calls) == 2:  # the database goes away once
            raise psycopg.OperationalError("server closed the connection")
        if len(calls) == 4:
            stop.set()
        return len(calls)

    log = logging.getLogger("test.periodic")
    retrying = OutageRetry(stop, log, on_down=lambda: None, consequence="c", resumed="back")
    with caplog.at_level(logging.WARNING, logger="test.periodic"):
        assert list(every(step, 0.001, stop, retrying)) == [1, 3, 4]
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == [
        "database unavailable",
        "database reachable again; back",
    ]


def test_following_ends_quietly_when_stopped_while_the_database_is_away() -> None:
    stop = threading.Event()

    def down() -> int:
        stop.set()
        raise psycopg.OperationalError("connection refused")

    retrying = OutageRetry(
        stop, logging.getLogger("test"), on_down=lambda: None, consequence="", resumed=""
    )
    assert list(every(down, 60.0, stop, retrying)) == []
