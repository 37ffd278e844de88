"""``diffwatch demo`` end to end on a real Postgres: logs, images and GPU samples stored once."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from diffwatch.cli import build

END = datetime(2026, 11, 2, 16, 0, tzinfo=UTC)
HOURS = 3


def demo(db_url: str, out: Path, *extra: str, end: datetime = END) -> dict:
    """Run the demo through the CLI; return its JSON summary."""
    res = CliRunner().invoke(
        build(),
        [
            "demo",
            "--hours", str(HOURS),
            "--rate", "10",
            "--seed", "7",
            "--end", end.isoformat(),
            "--out", str(out),
            "--database-url", db_url,
            "--json",
            "--score-limit", "3",
            *extra,
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout.strip().splitlines()[-1])


def counts(sql) -> tuple[int, int, int, int]:
    """Rows in generations, rejected_records, gpu_samples and log_offsets."""
    return sql(
        "SELECT (SELECT count(*) FROM generations), (SELECT count(*) FROM rejected_records), "
        "(SELECT count(*) FROM gpu_samples), (SELECT count(*) FROM log_offsets)"
    )[0]


def test_demo_stores_a_realistic_history_once(tmp_path, db_url, sql):
    out = tmp_path / "demo"
    first = demo(db_url, out)

    # -- what the service wrote, and that the collector read every line of it
    logs = sorted(p.name for p in (out / "logs").iterdir())
    assert logs == ["gen.jsonl", "gen.jsonl.1"]  # rotated by rename
    lines = sum(p.read_bytes().count(b"\n") for p in (out / "logs").iterdir())
    gens, rejected, gpu, _ = counts(sql)
    assert lines == first["service"]["log_lines"] == gens + rejected
    assert first["collected"]["ingested"] == gens > 1500
    assert first["collected"]["rejected"] == rejected
    # -- the dashboard's rollups are brought up to date at the end
    assert first["rollups"] == {"generations": gens, "gpu_samples": gpu, "scorer_results": 6}
    # -- the drift checks ran on its data: prompt drift with the demo CLIP, re-generation
    # with the tiny random-weight pipeline (labelled as demo runs)
    drift = first["drift"]
    assert drift["tiny_pipeline"] and not drift["tiny_clip"]
    assert drift["regenerate"]["n_items"] == 4 and drift["golden"]["new_baselines"] == 3
    assert "tiny random-weight" in drift["regenerate"]["pipeline"]
    runs = sql("SELECT kind, status, demo FROM drift_runs ORDER BY id")
    if "error" in drift["images"]:
        # A server without pgvector (CI's): image drift is skipped with the reason, no run.
        assert "no pgvector extension" in drift["images"]["error"]
    else:  # the embedded server has pgvector: the scored images' embeddings were compared
        assert ("images", "ok", False) in runs and drift["images"]["run_id"]
        runs.remove(("images", "ok", False))
    assert runs == [
        ("prompts", "ok", False),
        ("regenerate", "ok", True),
        ("golden", "ok", True),
    ]
    regen_files = sql("SELECT regen_uri FROM drift_items WHERE regen_uri IS NOT NULL")
    assert len(regen_files) >= 6 and all(Path(u).is_file() for (u,) in regen_files)

    # -- generations: both versions, errors, unknown keys in extra, inside the window
    by_version = dict(
        sql("SELECT model_version || '/' || deployment, count(*) FROM generations GROUP BY 1")
    )
    assert set(by_version) == {"v1.4/stable", "v1.5-rc1/canary"}
    assert 0.05 < by_version["v1.5-rc1/canary"] / gens < 0.15
    errors = sql("SELECT error FROM generations WHERE status = 'error'")
    assert 0 < len(errors) < gens * 0.04 and all(e[0] for e in errors)
    assert sql("SELECT count(*) FROM generations WHERE extra ? 'client' AND extra ? 'region'") == [
        (gens,)
    ]
    lo, hi = sql("SELECT min(ts), max(ts) FROM generations")[0]
    assert END - timedelta(hours=HOURS) <= lo and hi < END
    slower = sql(
        "SELECT avg(inference_ms) FILTER (WHERE deployment = 'canary') / "
        "avg(inference_ms) FILTER (WHERE deployment = 'stable') FROM generations "
        "WHERE status = 'ok' AND gpu_type LIKE '%H100%'"
    )[0][0]
    assert slower > 1.1

    # -- rejected lines, with their reasons and where they came from
    reasons = sql("SELECT reason, source FROM rejected_records")
    assert reasons and all(src.startswith(str(out / "logs" / "gen.jsonl")) for _, src in reasons)
    assert all(
        "not valid JSON" in r or "no UTC offset" in r or '"status" must be' in r for r, _ in reasons
    )

    # -- GPU samples: one a minute for every GPU, following the load
    n_gpus = first["gpus"]
    assert gpu == HOURS * 60 * n_gpus == first["service"]["gpu_samples"]
    assert sql("SELECT count(DISTINCT host) FROM gpu_samples")[0][0] >= 3
    util, mem_ok = sql(
        "SELECT max(util_pct), bool_and(mem_used_mib <= mem_total_mib) FROM gpu_samples"
    )[0]
    assert 10 < util <= 100 and mem_ok

    # -- images: every ok request points at a valid PNG that exists
    uris = [u for (u,) in sql("SELECT image_uri FROM generations WHERE status = 'ok'")]
    assert len(uris) > 1500 and all(u.startswith(str(out / "images")) for u in uris)
    for uri in uris[::50]:
        with Image.open(uri) as img:
            img.verify()
        with Image.open(uri) as img:
            assert img.format == "PNG" and max(img.size) == 256
    assert sql("SELECT count(*) FROM generations WHERE status = 'error' AND image_uri IS NOT NULL")[
        0
    ] == (0,)

    # -- a second run over the same output stores nothing again
    before = counts(sql)
    again = demo(db_url, out)
    assert counts(sql) == before
    assert again["service"]["requests"] == 0 and again["collected"]["ingested"] == 0
    assert again["collected"]["rejected"] == 0 and again["notes"]

    # -- nor does a run into a fresh output directory
    fresh = demo(db_url, tmp_path / "fresh")
    assert counts(sql)[:3] == before[:3] and fresh["service"]["requests"] == 0


def test_a_later_run_adds_only_the_minutes_since(tmp_path, db_url, sql):
    out = tmp_path / "demo"
    demo(db_url, out)
    gens, _, gpu, _ = counts(sql)
    later = demo(db_url, out, end=END + timedelta(minutes=30))
    assert later["service"]["minutes"] == 30
    new = sql("SELECT min(ts), max(ts), count(*) FROM generations WHERE ts >= %s", (END,))[0]
    assert new[0] >= END and new[1] < END + timedelta(minutes=30)
    assert new[2] == later["collected"]["ingested"] > 0
    assert counts(sql)[0] == gens + new[2]
    assert counts(sql)[2] == gpu + 30 * later["gpus"]
    # The collector found the old lines already read; the old files were not re-read.
    assert later["collected"]["duplicates"] == 0
    assert sql("SELECT count(*), count(DISTINCT request_id) FROM generations")[0] == (
        gens + new[2],
        gens + new[2],
    )


def test_human_summary_shows_counts_and_how_to_look(tmp_path, db_url, conninfo):
    res = CliRunner().invoke(
        build(),
        [
            "demo", "--hours", "0.5", "--rate", "5", "--end", END.isoformat(),
            "--out", str(tmp_path), "--database-url", db_url, "--score-limit", "3",
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "generations" in res.stdout and "gpu_samples" in res.stdout
    assert f'psql "{conninfo}"' in res.stdout


def test_end_in_the_future_is_refused_with_the_fix(tmp_path, db_url):
    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    res = CliRunner().invoke(
        build(), ["demo", "--end", soon, "--out", str(tmp_path), "--database-url", db_url]
    )
    assert res.exit_code == 2
    assert "in the future" in res.output
    naive = CliRunner().invoke(
        build(), ["demo", "--end", "2026-01-01T00:00", "--database-url", db_url]
    )
    assert naive.exit_code == 2 and "no UTC offset" in naive.output
