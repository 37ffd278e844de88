"""``diffwatch demo``'s accounts and review step on a real Postgres, through the CLI."""

from __future__ import annotations

import re
import stat
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from scipy.stats import spearmanr
from typer.testing import CliRunner

from diffwatch.auth.passwords import verify_password
from diffwatch.cli import build
from diffwatch.demo.run import run_demo_review
from tests.helpers import demo_clip_args

END = datetime(2026, 11, 2, 16, 0, tzinfo=UTC)
ROLES = {"admin": "admin", "ops": "ops", "rater1": "rater", "rater2": "rater"}


@pytest.fixture(autouse=True)
def empty_hf_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache, so only the CLIP given on the command line loads."""
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf"))


def run_demo(db_url: str, out: Path, *extra: str) -> str:
    """Run the demo through the CLI (human summary); return its stdout."""
    res = CliRunner().invoke(
        build(),
        [
            "demo", "--hours", "1", "--rate", "10", "--seed", "5", "--end", END.isoformat(),
            "--out", str(out), "--database-url", db_url, "--no-drift", *extra,
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    return res.stdout


def printed_credentials(stdout: str) -> dict[str, tuple[str, str]]:
    """username -> (role, password) from the summary's credentials table."""
    after = stdout.split("log in with these demo accounts", 1)[1]
    rows = re.findall(r"^  (admin|ops|rater\d)\s+(\w+)\s+(\S+)$", after, re.M)
    return {u: (r, p) for u, r, p in rows}


def stored_hashes(conninfo: str) -> dict[str, tuple[str, str, bool]]:
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute("SELECT username, role, password_hash, active FROM users").fetchall()
    return {u: (r, h, a) for u, r, h, a in rows}


def test_demo_creates_accounts_and_seeds_ratings(tmp_path, db_url, conninfo, sql, demo_clip):
    out = tmp_path / "demo"
    stdout = run_demo(db_url, out, "--score-limit", "300", *demo_clip_args(demo_clip))

    # -- the four accounts, with the printed passwords, which verify against the hashes
    creds = printed_credentials(stdout)
    assert {u: r for u, (r, _) in creds.items()} == ROLES
    assert len({p for _, p in creds.values()}) == 4 and all(len(p) >= 16 for _, p in creds.values())
    stored = stored_hashes(conninfo)
    assert {u: r for u, (r, _, _) in stored.items()} == ROLES
    for user, (_, password) in creds.items():
        assert stored[user][1].startswith("$argon2id$")
        assert verify_password(stored[user][1], password)
    assert "http://127.0.0.1:8501" in stdout and "diffwatch app" in stdout

    # -- the same credentials in a file only its owner can read
    path = out / "credentials.txt"
    assert str(path) in stdout
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert all(f"  {u}" in text and p in text for u, (_, p) in creds.items())
    assert sql("SELECT count(*) FROM audit_log WHERE action = 'user.add' AND actor = 'demo'") == [
        (4,)
    ]

    # -- ratings by both raters through the queue: some items twice, some left open
    by_rater = dict(sql("SELECT rater_username, count(*) FROM review_ratings GROUP BY 1"))
    assert set(by_rater) == {"rater1", "rater2"} and by_rater["rater1"] > by_rater["rater2"] > 10
    (twice,) = sql("SELECT count(*) FROM review_items WHERE n_ratings >= 2")[0]
    assert twice >= 5
    (open_items,) = sql("SELECT count(*) FROM review_items WHERE done_at IS NULL")[0]
    assert 5 <= open_items <= 20
    assert sql("SELECT count(*) FROM review_items WHERE lease_expires_at IS NOT NULL") == [(0,)]
    (rated_audit,) = sql("SELECT count(*) FROM audit_log WHERE action = 'rating.add'")[0]
    assert rated_audit == sum(by_rater.values())
    assert sql("SELECT count(*) FROM review_ratings WHERE comment IS NOT NULL")[0][0] > 0
    # Each rating comes after its image and by the demo's end, spread over the window as a
    # person's would be (they all carried the second the demo ran before).
    (early, late, minutes) = sql(
        "SELECT count(*) FILTER (WHERE r.rated_at < g.ts), count(*) FILTER (WHERE r.rated_at"
        " >= %s), count(DISTINCT date_trunc('minute', r.rated_at)) FROM review_ratings r"
        " JOIN review_items i ON i.id = r.item_id JOIN generations g ON g.id = i.generation_id",
        (END,),
    )[0]
    assert early == 0 and late == 0 and minutes >= 30  # a one-hour demo: most of its minutes
    summary = next(ln for ln in stdout.splitlines() if ln.startswith("review:"))
    assert f"{sum(by_rater.values())} simulated ratings stored" in summary
    assert f"{open_items} items left open" in summary and "random" in summary

    # -- the raters judge what the image shows, never seeing CLIP; a CLIP that has learned
    # the demo's scenes agrees with them (what the calibration on the rating analytics shows)
    pairs = sql(
        "SELECT (SELECT max(value) FROM scorer_results s WHERE s.generation_id = i.generation_id"
        "        AND s.scorer = 'clip'), avg(r.adherence)"
        " FROM review_items i JOIN review_ratings r ON r.item_id = i.id GROUP BY i.id"
    )
    assert len(pairs) >= 30 and all(c is not None for c, _ in pairs)
    rho = spearmanr([c for c, _ in pairs], [float(a) for _, a in pairs]).statistic
    # Measured 0.18 on this 1-hour sample (most rated items show their prompt), 0.50 on the
    # default 24-hour demo; a random-weight CLIP gives about 0. Items the raters found
    # off-prompt must score clearly lower than those they found on-prompt.
    assert rho > 0.1, rho
    low = [c for c, a in pairs if float(a) <= 2.5]
    high = [c for c, a in pairs if float(a) >= 3.5]
    assert low and high and sum(low) / len(low) < sum(high) / len(high) - 5, (low, high)
    assert "the raters knew what" in stdout
    # rater2 is the harsher one
    means = dict(sql("SELECT rater_username, avg(adherence) FROM review_ratings GROUP BY 1"))
    assert means["rater2"] < means["rater1"]

    # -- re-running the step: new passwords that work, the old ones no longer do
    accounts, path2, report = run_demo_review(conninfo, out, END, 1.0, 5, 10.0)
    assert path2 == path and stat.S_IMODE(path.stat().st_mode) == 0o600
    after = stored_hashes(conninfo)
    assert {a.username: a.role for a in accounts} == ROLES
    assert not any(a.created for a in accounts)
    for a in accounts:
        assert verify_password(after[a.username][1], a.password)
        assert not verify_password(after[a.username][1], creds[a.username][1])
        assert a.password in path.read_text()
    assert sql("SELECT count(*) FROM audit_log WHERE action = 'user.passwd'") == [(4,)]
    assert report.open_items <= 20 and report.queued["random"] > 0


def test_rerun_puts_back_a_changed_role_and_a_deactivated_account(tmp_path, db_url, conninfo):
    run_demo_review(conninfo, tmp_path, END, 1.0, 0, 10.0)  # no scored data: accounts only
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("UPDATE users SET role = 'admin' WHERE username = 'rater2'")
        conn.execute("UPDATE users SET active = false WHERE username = 'ops'")
    accounts, _, report = run_demo_review(conninfo, tmp_path, END, 1.0, 0, 10.0)
    stored = stored_hashes(conninfo)
    assert {u: r for u, (r, _, _) in stored.items()} == ROLES
    assert all(active for _, _, active in stored.values())
    assert all(verify_password(stored[a.username][1], a.password) for a in accounts)
    assert report.ratings == 0 and report.open_items == 0


def test_no_accounts_skips_the_step(tmp_path, db_url, sql):
    res = CliRunner().invoke(
        build(),
        [
            "demo", "--hours", "0.2", "--rate", "5", "--end", END.isoformat(), "--out",
            str(tmp_path), "--database-url", db_url, "--score-limit", "5", "--no-drift",
            "--no-accounts", "--json",
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert sql("SELECT count(*) FROM users") == [(0,)]
    assert not (tmp_path / "credentials.txt").exists()
