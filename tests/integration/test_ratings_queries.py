"""diffwatch.db.queries.ratings_analytics on real Postgres, end to end into analytics.ratings."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from diffwatch.analytics.agreement import krippendorff_alpha
from diffwatch.analytics.ratings import (
    clip_vs_adherence,
    nsfw_vs_human,
    rater_stats,
    ratings_over_time,
)
from diffwatch.db.queries import ratings_analytics as ra

T = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)
START, END = T - timedelta(hours=1), T + timedelta(days=1)
NSFW_V = "nudenet-320n-abc123/t0.5/labels-deadbeef"
M = timedelta(minutes=1)

# generation: (version, clip, nsfw score, nsfw flagged); None: not scored
GENS = {
    1: ("v1", 20.0, 0.8, True),
    2: ("v1", 30.0, 0.2, False),
    3: ("v1", 25.0, 0.6, True),
    4: ("v2", 40.0, None, None),
    5: ("v1", 10.0, 0.1, False),
}
# (generation, rater, quality, adherence, flags, rated_at)
RATINGS = [
    (1, "alice", 4, 2, ["nsfw"], T),
    (1, "bob", 2, 2, [], T + 5 * M),
    (2, "alice", 3, 3, [], T + 10 * M),
    (2, "bob", 3, 4, ["artifacts"], T + 15 * M),
    (3, "alice", 5, 5, [], T + 20 * M),
    (3, "bob", 4, 4, [], T + 25 * M),
    (4, "alice", 2, 5, [], T + 30 * M),
    (5, "alice", 1, 1, ["nsfw"], T + timedelta(days=2)),  # outside [START, END)
]


@pytest.fixture
def seeded(conninfo: str, sql) -> dict[int, int]:
    """Seed generations, scores, raters, items and ratings; return generation → item id."""
    sql(
        "INSERT INTO users (username, role, password_hash) VALUES ('alice','rater','x'),"
        " ('bob','rater','x')"
    )
    items = {}
    for g, (version, clip, score, flagged) in GENS.items():
        sql(
            "INSERT INTO generations (id, request_id, ts, model, model_version, prompt, status)"
            " VALUES (%s, %s, %s, 'sd', %s, %s, 'ok')",
            (g, f"r{g}", T - timedelta(hours=2), version, f"prompt {g}"),
        )
        if g == 3:  # an older CLIP result that the latest one supersedes
            sql(
                "INSERT INTO scorer_results (generation_id, scorer, scorer_version, value,"
                " scored_at) VALUES (3, 'clip', 'old', 90.0, %s)",
                (T - timedelta(days=1),),
            )
        sql(
            "INSERT INTO scorer_results (generation_id, scorer, scorer_version, value)"
            " VALUES (%s, 'clip', 'new', %s)",
            (g, clip),
        )
        if score is not None:
            sql(
                "INSERT INTO scorer_results (generation_id, scorer, scorer_version, value,"
                " flagged) VALUES (%s, 'nsfw', %s, %s, %s)",
                (g, NSFW_V, score, flagged),
            )
        n = sum(r[0] == g for r in RATINGS)
        (item,) = sql(
            "INSERT INTO review_items (generation_id, reasons, required_ratings, n_ratings,"
            " done_at) VALUES (%s, ARRAY['random'], 2, %s, CASE WHEN %s = 2 THEN now() END)"
            " RETURNING id",
            (g, n, n),
        )[0]
        items[g] = item
    for g, rater, q, a, flags, at in RATINGS:
        sql(
            "INSERT INTO review_ratings (item_id, rater_id, rater_username, quality, adherence,"
            " flags, rated_at) VALUES (%s, (SELECT id FROM users WHERE username = %s), %s,"
            " %s, %s, %s, %s)",
            (items[g], rater, rater, q, a, flags, at),
        )
    return items


@pytest.fixture
def conn(conninfo: str):
    with psycopg.connect(conninfo, autocommit=True) as c:
        yield c


def test_ratings_rows_window_and_versions(conn, seeded):
    rows = ra.ratings(conn, START, END)
    assert len(rows) == 7  # the rating two days later is outside the window
    first = rows[0]
    assert (first.item_id, first.generation_id, first.rater_username) == (seeded[1], 1, "alice")
    assert (first.quality, first.adherence, first.flags) == (4, 2, ["nsfw"])
    assert first.rated_at == T and first.model_version == "v1"
    assert first.ts == T - timedelta(hours=2)
    v2 = ra.ratings(conn, START, END, versions=["v2"])
    assert [(r.generation_id, r.rater_username) for r in v2] == [(4, "alice")]
    assert ra.ratings(conn, START, END, versions=[]) == []
    late = ra.ratings(conn, END, END + timedelta(days=2))
    assert [r.generation_id for r in late] == [5]


def test_clip_adherence_rows(conn, seeded):
    rows = ra.clip_adherence(conn, START, END)
    got = [(r.generation_id, r.model_version, r.clip, r.mean_adherence, r.n_ratings) for r in rows]
    assert got == [
        (1, "v1", 20.0, 2.0, 2),
        (2, "v1", 30.0, 3.5, 2),
        (3, "v1", 25.0, 4.5, 2),  # latest CLIP result, not the older 90
        (4, "v2", 40.0, 5.0, 1),
    ]


def test_nsfw_human_rows(conn, seeded):
    rows = ra.nsfw_human(conn, START, END)
    got = [(r.generation_id, r.nsfw_score, r.nsfw_flagged, r.human_nsfw) for r in rows]
    assert got == [
        (1, 0.8, True, True),
        (2, 0.2, False, False),
        (3, 0.6, True, False),
        (4, None, None, False),
    ]
    assert rows[0].nsfw_scorer_version == NSFW_V and rows[3].nsfw_scorer_version is None
    assert ra.threshold_from_version(rows[0].nsfw_scorer_version) == 0.5
    assert ra.threshold_from_version("plain") is None
    assert ra.threshold_from_version(None) is None


def test_agreement_triples(conn, seeded):
    q = ra.agreement_triples(conn, "quality", START, END)
    i1, i2, i3, i4 = (seeded[g] for g in (1, 2, 3, 4))
    assert q == [
        (i1, "alice", 4),
        (i1, "bob", 2),
        (i2, "alice", 3),
        (i2, "bob", 3),
        (i3, "alice", 5),
        (i3, "bob", 4),
        (i4, "alice", 2),
    ]
    a = ra.agreement_triples(conn, "adherence", START, END, versions=["v1"])
    assert [v for *_, v in a] == [2, 2, 3, 4, 5, 4]
    with pytest.raises(ValueError, match="field"):
        ra.agreement_triples(conn, "comment", START, END)


def test_bad_ranges_are_refused(conn, seeded):
    with pytest.raises(ValueError, match="timezone-aware"):
        ra.ratings(conn, START.replace(tzinfo=None), END)
    with pytest.raises(ValueError, match="empty time range"):
        ra.ratings(conn, END, START)


def test_end_to_end_figures(conn, seeded):
    clip_rows = ra.clip_adherence(conn, START, END)
    clip = clip_vs_adherence([r.clip for r in clip_rows], [r.mean_adherence for r in clip_rows])
    # CLIP ranks 1, 3, 2, 4 against adherence ranks 1, 2, 3, 4: rho = 1 - 6*2/(4*15) = 0.8
    assert clip.n == 4 and clip.rho == pytest.approx(0.8)

    ns = ra.nsfw_human(conn, START, END)
    cal = nsfw_vs_human(
        [r.nsfw_score for r in ns],
        [r.nsfw_flagged for r in ns],
        [r.human_nsfw for r in ns],
        threshold=ra.threshold_from_version(ns[0].nsfw_scorer_version),
    )
    # item 4 has no NSFW result and drops out: TP 1 (g1), FP 1 (g3), TN 1 (g2)
    assert (cal.n, cal.tp, cal.fp, cal.fn, cal.tn) == (3, 1, 1, 0, 1)
    assert (cal.precision, cal.recall) == (0.5, 1.0) and cal.f1 == pytest.approx(2 / 3)
    assert cal.threshold == 0.5 and cal.suggested_threshold == 0.8
    assert cal.suggested_f1 == 1.0

    stats = {s.rater: s for s in rater_stats(ra.ratings(conn, START, END))}
    # alice: 4-2, 3-3, 5-4 → +1; bob the mirror image; item 4 has no second rater
    assert stats["alice"].quality_deviation == pytest.approx(1.0)
    assert stats["bob"].quality_deviation == pytest.approx(-1.0)
    assert stats["alice"].n_overlap_items == 3 and stats["alice"].n_ratings == 4
    assert stats["alice"].ratings_per_hour == pytest.approx(8.0)  # 4 ratings in 30 min
    assert stats["bob"].ratings_per_hour == pytest.approx(9.0)  # 3 ratings in 20 min

    trend = [r.to_dict() for r in ratings_over_time(ra.ratings(conn, START, END), "day")]
    assert [(r["model_version"], r["n"]) for r in trend] == [("v1", 6), ("v2", 1)]
    assert trend[0]["mean_quality"] == pytest.approx(3.5)
    assert trend[0]["mean_adherence"] == pytest.approx(20 / 6)

    triples = ra.agreement_triples(conn, "quality", START, END)
    agreement = krippendorff_alpha(triples, "ordinal")
    assert (agreement.n_items, agreement.n_ratings, agreement.n_raters) == (3, 6, 2)
    assert agreement.alpha == pytest.approx(
        krippendorff_alpha(
            [(1, "a", 4), (1, "b", 2), (2, "a", 3), (2, "b", 3), (3, "a", 5), (3, "b", 4)],
            "ordinal",
        ).alpha
    )


def test_ratings_by_reason_and_reason_counts(conn, seeded, sql):
    sql("UPDATE review_items SET reasons = ARRAY['low_clip','random'] WHERE id = %s", (seeded[1],))
    sql("UPDATE review_items SET reasons = ARRAY['nsfw_flagged'] WHERE id = %s", (seeded[2],))
    random = ra.ratings(conn, START, END, reason="random")
    assert sorted({r.generation_id for r in random}) == [1, 3, 4]  # 1 keeps 'random'
    assert len(random) == 5
    flagged = ra.ratings(conn, START, END, reason="nsfw_flagged")
    assert [(r.generation_id, r.rater_username) for r in flagged] == [(2, "alice"), (2, "bob")]
    assert ra.ratings(conn, START, END, versions=["v2"], reason="low_clip") == []
    assert ra.reason_counts(conn, START, END) == [
        ("random", 3, 5),
        ("low_clip", 1, 2),
        ("nsfw_flagged", 1, 2),
    ]
    assert ra.reason_counts(conn, START, END, versions=["v2"]) == [("random", 1, 1)]


def test_human_items_by_generation_time_and_filters(conn, seeded, sql):
    from diffwatch.analytics.human_ratings import human_summary
    from diffwatch.model.filters import Filters

    made = Filters(start=T - timedelta(hours=3), end=T)  # the generations are at T − 2 h
    rows = ra.human_items(conn, made, "version")
    got = [(r.group, r.item_id, r.n_ratings, r.mean_quality, r.mean_adherence, r.human_nsfw)
           for r in rows]  # fmt: skip
    assert got == [
        ("v1", seeded[1], 2, 3.0, 2.0, True),
        ("v1", seeded[2], 2, 3.0, 3.5, False),
        ("v1", seeded[3], 2, 4.5, 4.5, False),
        ("v1", seeded[5], 1, 1.0, 1.0, True),  # rated two days later: still counts
        ("v2", seeded[4], 1, 2.0, 5.0, False),
    ]
    v1, v2 = human_summary(rows)
    assert (v1.group, v1.n_items, v1.n_ratings) == ("v1", 4, 7)
    assert v1.mean_quality == pytest.approx((3 + 3 + 4.5 + 1) / 4)
    assert v1.nsfw_share == 0.5 and v2.quality_low is None  # one image: no interval
    assert {r.group for r in ra.human_items(conn, made, "deployment")} == {""}
    assert [r.item_id for r in ra.human_items(conn, replace(made, versions=("v2",)))] == [seeded[4]]
    assert ra.human_items(conn, replace(made, deployments=("canary",))) == []
    sql("UPDATE generations SET deployment = 'canary', gpu_type = 'L4' WHERE id = 4")
    canary = replace(made, deployments=("canary",), gpu_types=("L4",), models=("sd",))
    assert [(r.group, r.item_id) for r in ra.human_items(conn, canary, "deployment")] == [
        ("canary", seeded[4])
    ]
    assert ra.human_items(conn, Filters(start=T - timedelta(hours=1), end=END)) == []
    with pytest.raises(ValueError, match="by: 'gpu'"):
        ra.human_items(conn, made, "gpu")


def test_version_comparison_reads_the_human_rating_per_image(conninfo) -> None:
    """The verdict's "human rating" metric: mean quality per rated image, by side."""
    from diffwatch.analytics.versions import verdict
    from diffwatch.db.queries.versions import Side, compare_stats
    from diffwatch.model.filters import Filters
    from tests.app.ratings_dataset import seed_ratings

    seeded = seed_ratings(conninfo)
    per_item: dict[int, list[int]] = {}
    for item, _, quality, _, _ in seeded.ratings:
        per_item.setdefault(item, []).append(quality)
    f = Filters(start=seeded.now - timedelta(days=2), end=seeded.now + timedelta(hours=1))
    with psycopg.connect(conninfo) as conn:
        a, b = compare_stats(conn, f, Side("v1", versions=("v1",)), Side("v2", versions=("v2",)))
    for side, version in ((a, "v1"), (b, "v2")):
        want = sorted(sum(q) / len(q) for i, q in per_item.items() if seeded.version[i] == version)
        assert side.rating is not None
        assert sorted(v for v, _ in side.rating.pairs) == pytest.approx(want)
    rating = next(c for c in verdict(a, b).comparisons if c.metric.key == "rating_mean")
    assert "not measured" not in rating.sentence
