"""URL parameters are validated: bad ids and dates give a plain message, never a crash, and
the raw value is never echoed (Streamlit AppTest on real Postgres)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from diffwatch.model.dashboard_url import EARLIEST, parse
from tests.app.test_drift_page import DriftIds, run_drift, seed_drift
from tests.app.test_pages import run_page

HOSTILE = "![x](http://evil.example/x.png)[click](http://evil.example)"


def messages(at: AppTest) -> list[str]:
    return [m.value for kind in ("warning", "info", "error") for m in at.get(kind)]


@pytest.fixture
def drift_db(conninfo: str, tmp_path: Path) -> tuple[str, DriftIds]:
    return conninfo, seed_drift(conninfo, tmp_path / "drift")


@pytest.mark.parametrize(
    "params",
    [
        {"from": "0001-01-01T00:00", "to": "9999-12-31T23:59"},
        {"from": "1900-01-01", "to": "2200-01-01T00:00+14:00"},
        {"from": "0001-01-01T00:00", "to": "0001-01-02T00:00"},
    ],
)
def test_dates_out_of_range_are_clamped_with_a_plain_message(params, conninfo, monkeypatch) -> None:
    at = run_page("overview", conninfo, monkeypatch, **params)
    said = " ".join(messages(at))
    assert "outside the times" in said or "from/to must be" in said
    for raw in params.values():
        assert raw not in said


def test_clamped_dates_stay_in_a_sane_range() -> None:
    now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    view, problems = parse({"from": ["0001-01-01T00:00"], "to": ["9999-12-31T23:59"]}, now)
    assert view.range == "custom" and len(problems) == 1
    assert view.start == EARLIEST and view.end is not None
    assert now < view.end <= now + timedelta(days=2)
    f = view.filters(now)
    assert f.start == EARLIEST and f.end == view.end


@pytest.mark.parametrize(
    "value", ["²", "１２", "12a", "-1", "1234567890123456789", "0x10", " 7", HOSTILE]
)
def test_a_bad_run_id_gives_a_plain_message(value, drift_db, monkeypatch) -> None:
    conninfo, _ = drift_db
    at = run_drift(conninfo, monkeypatch, range="30d", run=value)
    said = messages(at)
    assert any("not a valid id" in m for m in said), said
    assert not any(value in m for m in said)


def test_a_run_that_is_not_listed_says_so(drift_db, monkeypatch) -> None:
    conninfo, ids = drift_db
    at = run_drift(conninfo, monkeypatch, range="30d", run="987654321")
    assert any("not among the runs listed" in m for m in messages(at))
    at = run_drift(conninfo, monkeypatch, range="30d", run=str(ids.regenerate))
    assert not any("run" in m and "address" in m for m in messages(at))


@pytest.mark.parametrize("value", ["²", "99999999999999999999", HOSTILE])
def test_a_bad_item_id_gives_a_plain_message(value, drift_db, monkeypatch) -> None:
    conninfo, ids = drift_db
    at = run_drift(conninfo, monkeypatch, range="30d", run=str(ids.regenerate), item=value)
    said = messages(at)
    assert any("not a valid id" in m for m in said), said
    assert not any(value in m for m in said)


def test_an_unknown_range_is_not_echoed(conninfo, monkeypatch) -> None:
    at = run_page("overview", conninfo, monkeypatch, range=HOSTILE)
    said = [w.value for w in at.sidebar.warning]
    assert said and all("unknown time range" in w and "evil" not in w for w in said)
