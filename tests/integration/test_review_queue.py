"""The review queue on real Postgres: enqueue by policy, leases, ratings, skips, concurrency."""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from diffwatch.db.queries import review
from diffwatch.model.review_policy import ReviewPolicy

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def _gen(
    conn: psycopg.Connection,
    i: int,
    *,
    version: str = "v1",
    clip: float | None = 30.0,
    nsfw: bool | None = False,
    deployment: str = "stable",
    ts: datetime | None = None,
    status: str = "ok",
) -> int:
    """Insert one generation (and its CLIP and NSFW results, where given); return its id."""
    (gid,) = conn.execute(
        "INSERT INTO generations (request_id, ts, model, model_version, prompt, status,"
        " negative_prompt, sampler, steps, cfg_scale, seed, width, height, image_uri, deployment)"
        " VALUES (%s, %s, 'sd', %s, %s, %s, 'blurry', 'euler', 20, 7.5, %s, 512, 512, %s, %s)"
        " RETURNING id",
        (
            f"r{i}",
            ts or NOW - timedelta(hours=1),
            version,
            f"prompt {i}",
            status,
            i,
            f"file:///img/{i}.png",
            deployment,
        ),
    ).fetchone()
    if clip is not None:
        conn.execute(
            "INSERT INTO scorer_results (generation_id, scorer, scorer_version, value)"
            " VALUES (%s, 'clip', 'test', %s)",
            (gid, clip),
        )
    if nsfw is not None:
        conn.execute(
            "INSERT INTO scorer_results (generation_id, scorer, scorer_version, flagged)"
            " VALUES (%s, 'nsfw', 'test', %s)",
            (gid, nsfw),
        )
    return gid


def _user(conn: psycopg.Connection, name: str) -> int:
    (uid,) = conn.execute(
        "INSERT INTO users (username, role, password_hash) VALUES (%s, 'rater', 'x') RETURNING id",
        (name,),
    ).fetchone()
    return uid


@pytest.fixture
def conn(conninfo: str):
    with psycopg.connect(conninfo, autocommit=True) as c:
        yield c


def _one_item(conn: psycopg.Connection, k: int = 1) -> int:
    """Queue one generation that needs ``k`` ratings; return the item id."""
    _gen(conn, 1)
    review.enqueue(conn, ReviewPolicy(random_per_version=1, k_default=k, k2_share=0), NOW)
    (item_id,) = conn.execute("SELECT id FROM review_items").fetchone()
    return item_id


def test_enqueue_picks_each_reason_merges_them_and_adds_nothing_twice(conn, sql) -> None:
    # v1: 30 stable generations, CLIP 20..49, one NSFW-flagged; v2: 10 canary, CLIP 50..59,
    # one NSFW-flagged. Not eligible: unscored, outside the window, failed.
    v1 = [_gen(conn, i, clip=20 + i, nsfw=(i == 15)) for i in range(30)]
    v2 = [
        _gen(conn, 100 + i, version="v2", clip=50 + i, nsfw=(i == 3), deployment="canary")
        for i in range(10)
    ]
    not_eligible = [
        _gen(conn, 200, clip=None, nsfw=None),
        _gen(conn, 201, clip=1.0, ts=NOW - timedelta(hours=30)),
        _gen(conn, 202, clip=1.0, status="error"),
    ]
    policy = ReviewPolicy(
        random_per_version=5, low_clip_quantile=0.1, low_clip_max=3, canary_max=10, k2_share=0.5
    )
    first = review.enqueue(conn, policy, NOW)
    assert first == {"random": 10, "low_clip": 3, "nsfw_flagged": 2, "canary": 10}
    items = {
        g: (set(r), k)
        for g, r, k in sql("SELECT generation_id, reasons, required_ratings FROM review_items")
    }
    assert not set(not_eligible) & set(items)
    assert {g for g, (r, _) in items.items() if "low_clip" in r} == set(v1[:3])  # lowest CLIP
    assert {g for g, (r, _) in items.items() if "nsfw_flagged" in r} == {v1[15], v2[3]}
    assert {"canary", "nsfw_flagged"} <= items[v2[3]][0]  # several reasons, all kept
    assert sum("random" in r for g, (r, _) in items.items() if g in v1) == 5
    assert all(k == policy.required_ratings(g) for g, (_, k) in items.items())
    assert {k for _, k in items.values()} == {1, 2}

    # Again: 5 more random per version (v2 has 5 left), the 4th-lowest CLIP (the 10 %
    # quantile is 23.9), nothing else; reasons merge into the queued canary items.
    second = review.enqueue(conn, policy, NOW)
    assert second == {"random": 10, "low_clip": 1, "nsfw_flagged": 0, "canary": 0}
    third = review.enqueue(conn, policy, NOW)
    assert third["low_clip"] == third["nsfw_flagged"] == third["canary"] == 0
    rows = sql("SELECT generation_id, reasons FROM review_items")
    assert len(rows) == len({g for g, _ in rows})
    assert all(len(r) == len(set(r)) for _, r in rows)
    reasons = {g: set(r) for g, r in rows}
    assert all({"canary", "random"} <= reasons[g] for g in v2)
    assert "low_clip" in reasons[v1[3]]


def test_claim_returns_what_the_rater_sees(conn) -> None:
    gid = _gen(conn, 7, nsfw=True)
    review.enqueue(conn, ReviewPolicy(random_per_version=5, k2_share=0), NOW)
    a = _user(conn, "alice")
    item = review.claim_next(conn, "alice", a, lease_s=60)
    assert item is not None
    assert (item.generation_id, item.prompt, item.negative_prompt) == (gid, "prompt 7", "blurry")
    assert item.image_uri == "file:///img/7.png" and item.model_version == "v1"
    assert item.parameters == {
        "sampler": "euler",
        "steps": 20,
        "cfg_scale": 7.5,
        "seed": 7,
        "width": 512,
        "height": 512,
    }
    assert item.nsfw_flagged is True
    assert set(item.reasons) == {"random", "nsfw_flagged"}
    assert item.lease_expires_at - item.leased_at < timedelta(seconds=61)
    # A reload gives the same item back; a second rater gets nothing while it is leased.
    assert review.claim_next(conn, "alice", a, lease_s=60).item_id == item.item_id
    assert review.claim_next(conn, "bob", _user(conn, "bob"), lease_s=60) is None


def test_lease_expiry_lets_another_rater_take_an_abandoned_item(conn, sql) -> None:
    item_id = _one_item(conn)
    a, b = _user(conn, "alice"), _user(conn, "bob")
    t0 = datetime.now(UTC)
    assert review.claim_next(conn, "alice", a, lease_s=60, now=t0).item_id == item_id
    assert review.claim_next(conn, "bob", b, lease_s=60, now=t0 + timedelta(seconds=59)) is None
    taken = review.claim_next(conn, "bob", b, lease_s=60, now=t0 + timedelta(seconds=61))
    assert taken is not None and taken.item_id == item_id
    # Alice comes back late: refused, nothing stored; Bob's rating counts.
    with pytest.raises(review.RatingRefused, match="leased to another rater"):
        review.rate(conn, item_id, "alice", a, 3, 3)
    assert review.rate(conn, item_id, "bob", b, 4, 5, ["artifacts"], "hands") is True
    assert sql("SELECT rater_username, quality, adherence, flags, comment FROM review_ratings") == [
        ("bob", 4, 5, ["artifacts"], "hands")
    ]
    assert sql("SELECT n_ratings, done_at IS NOT NULL, lease_username FROM review_items") == [
        (1, True, None)
    ]
    with pytest.raises(review.RatingRefused, match="already has its 1 rating"):
        review.rate(conn, item_id, "alice", a, 3, 3)
    assert review.claim_next(conn, "alice", a, lease_s=60) is None


def test_k2_item_goes_to_a_second_rater_only_after_the_first_rated(conn, sql) -> None:
    item_id = _one_item(conn, k=2)
    a, b = _user(conn, "alice"), _user(conn, "bob")
    assert review.claim_next(conn, "alice", a, lease_s=60).item_id == item_id
    assert review.claim_next(conn, "bob", b, lease_s=60) is None
    assert review.rate(conn, item_id, "alice", a, 2, 2)
    assert review.claim_next(conn, "alice", a, lease_s=60) is None  # rated it already
    assert review.claim_next(conn, "bob", b, lease_s=60).item_id == item_id
    assert review.rate(conn, item_id, "bob", b, 3, 1, ["nsfw", "bias"])
    assert sql("SELECT n_ratings, done_at IS NOT NULL FROM review_items") == [(2, True)]


def test_a_rating_made_earlier_keeps_its_own_time(conn, sql) -> None:
    from datetime import UTC, datetime, timedelta

    item_id = _one_item(conn, k=1)
    a = _user(conn, "alice")
    review.claim_next(conn, "alice", a, lease_s=60)
    at = datetime.now(UTC) - timedelta(hours=5)
    with pytest.raises(ValueError, match="timezone-aware"):
        review.rate(conn, item_id, "alice", a, 4, 4, at=at.replace(tzinfo=None))
    with pytest.raises(ValueError, match="must not be in the future"):
        review.rate(conn, item_id, "alice", a, 4, 4, at=datetime.now(UTC) + timedelta(hours=1))
    assert sql("SELECT count(*) FROM review_ratings") == [(0,)]
    assert review.rate(conn, item_id, "alice", a, 4, 4, at=at) is True
    assert sql("SELECT rated_at FROM review_ratings") == [(at,)]
    assert sql("SELECT done_at FROM review_items") == [(at,)]


def test_double_submit_stores_one_rating_and_one_audit_row(conn, sql) -> None:
    item_id = _one_item(conn, k=2)
    a = _user(conn, "alice")
    review.claim_next(conn, "alice", a, lease_s=60)
    assert review.rate(conn, item_id, "alice", a, 5, 4, ["other", "other"]) is True
    assert review.rate(conn, item_id, "Alice", a, 1, 1) is False  # same rater, any case
    assert sql("SELECT quality, flags FROM review_ratings") == [(5, ["other"])]
    assert sql("SELECT n_ratings, done_at FROM review_items") == [(1, None)]
    audit = sql("SELECT actor, action, target, details FROM audit_log")
    assert len(audit) == 1
    actor, action, target, details = audit[0]
    assert (actor, action, target) == ("alice", "rating.add", f"item {item_id}")
    assert details["quality"] == 5 and details["flags"] == ["other"]


def test_skip_hides_the_item_from_that_rater_only(conn, sql) -> None:
    item_id = _one_item(conn)
    a, b = _user(conn, "alice"), _user(conn, "bob")
    assert review.claim_next(conn, "alice", a, lease_s=60).item_id == item_id
    assert review.skip(conn, item_id, "alice") is True
    assert review.skip(conn, item_id, "alice") is False
    assert review.claim_next(conn, "alice", a, lease_s=60) is None
    assert review.claim_next(conn, "bob", b, lease_s=60).item_id == item_id
    assert sql("SELECT count(*) FROM review_ratings") == [(0,)]  # a skip is not a rating
    with pytest.raises(review.UnknownItem, match="review item 999"):
        review.skip(conn, 999, "alice")


def test_release_gives_the_item_back(conn) -> None:
    item_id = _one_item(conn)
    a, b = _user(conn, "alice"), _user(conn, "bob")
    review.claim_next(conn, "alice", a, lease_s=600)
    assert review.release(conn, item_id, "bob") is False  # not Bob's to release
    assert review.release(conn, item_id, "alice") is True
    assert review.claim_next(conn, "bob", b, lease_s=600).item_id == item_id
    stats = review.queue_stats(conn)
    assert (stats.open_items, stats.done_items, stats.leased_now) == (1, 0, 1)
    assert stats.open_by_reason == {"random": 1} and stats.ratings_missing == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0, 3, [], None), "quality must be a whole number from 1 to 5, got 0"),
        ((6, 3, [], None), "quality must be"),
        ((True, 3, [], None), "quality must be"),
        ((3, "4", [], None), "adherence must be a whole number from 1 to 5, got '4'"),
        ((3, 3, ["nsfw", "blurry"], None), "unknown flag(s) 'blurry'; use any of nsfw"),
        ((3, 3, "nsfw", None), "flags must be a list"),
        ((3, 3, [], "x" * 2001), "comment is 2001 characters long"),
    ],
)
def test_validation_errors_come_before_any_sql(conninfo: str, args: tuple, message: str) -> None:
    closed = psycopg.connect(conninfo)
    closed.close()  # any SQL would raise OperationalError, not ValueError
    with pytest.raises(ValueError) as e:
        review.rate(closed, 1, "alice", None, *args)
    assert message in str(e.value)
    with pytest.raises(ValueError, match="rater_username must be a non-empty"):
        review.rate(closed, 1, " ", None, 3, 3)
    with pytest.raises(ValueError, match="lease_s must be a positive"):
        review.claim_next(closed, "alice", None, lease_s=0)


def test_concurrent_raters_never_get_the_same_item_beyond_k(conninfo: str, conn, sql) -> None:
    n_items, n_raters = 120, 8
    for i in range(n_items):
        _gen(conn, i, clip=20 + i % 40)
    policy = ReviewPolicy(random_per_version=n_items, k2_share=0.3, k_high=3)
    review.enqueue(conn, policy, NOW)
    users = {f"rater{r}": _user(conn, f"rater{r}") for r in range(n_raters)}
    claims: list[tuple[int, str, datetime]] = []
    errors: list[BaseException] = []
    empty_claims = [0]
    lock = threading.Lock()
    start = threading.Barrier(n_raters)

    def work(name: str) -> None:
        rng = random.Random(name)
        deadline = time.monotonic() + 60
        try:
            with psycopg.connect(conninfo, autocommit=True) as c:
                start.wait()
                while time.monotonic() < deadline:
                    item = review.claim_next(c, name, users[name], lease_s=120)
                    if item is None:
                        with lock:
                            empty_claims[0] += 1
                        (left,) = c.execute(
                            "SELECT count(*) FROM review_items i WHERE done_at IS NULL AND NOT"
                            " EXISTS (SELECT 1 FROM review_ratings r WHERE r.item_id = i.id"
                            " AND r.rater_username = %s)",
                            (name,),
                        ).fetchone()
                        if left == 0:
                            return
                        time.sleep(0.002)  # others hold the rest; their ratings free them
                        continue
                    with lock:
                        claims.append((item.item_id, name, item.leased_at))
                    time.sleep(rng.random() * 0.002)
                    assert review.rate(c, item.item_id, name, users[name], rng.randint(1, 5), 3)
                    if rng.random() < 0.1:  # an impatient double click
                        assert not review.rate(c, item.item_id, name, users[name], 1, 1)
                raise AssertionError(f"{name} did not finish within 60 s")
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    t0 = time.monotonic()
    threads = [threading.Thread(target=work, args=(n,)) for n in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    assert not errors, errors

    k = dict(sql("SELECT id, required_ratings FROM review_items"))
    n_rated = dict(sql("SELECT item_id, count(*) FROM review_ratings GROUP BY item_id"))
    assert n_rated == k  # every item has exactly K ratings
    assert sql("SELECT count(*) FROM review_items WHERE done_at IS NULL") == [(0,)]
    assert sql(
        "SELECT count(*) FROM (SELECT item_id, rater_username FROM review_ratings"
        " GROUP BY 1, 2 HAVING count(*) > 1) d"
    ) == [(0,)]
    assert len(claims) == sum(k.values())  # no lease expired, so one claim per rating
    # One lease at a time: each item's next claim came after the previous holder's rating.
    rated_at = {
        (i, r): t for i, r, t in sql("SELECT item_id, rater_username, rated_at FROM review_ratings")
    }
    by_item: dict[int, list[tuple[datetime, str]]] = defaultdict(list)
    for item_id, name, leased_at in claims:
        by_item[item_id].append((leased_at, name))
    for item_id, seq in by_item.items():
        seq.sort()
        assert len({n for _, n in seq}) == len(seq)
        for (_, before), (leased_at, _) in itertools.pairwise(seq):
            assert rated_at[(item_id, before)] < leased_at, item_id
    print(
        f"\nreview concurrency: {n_items} items, {sum(k.values())} ratings "
        f"({sum(v > 1 for v in k.values())} items with K=3), {n_raters} raters, "
        f"{empty_claims[0]} empty claims, {elapsed:.2f} s"
    )


def test_removing_an_account_keeps_its_ratings(conn, sql) -> None:
    item_id = _one_item(conn, k=2)
    a = _user(conn, "alice")
    review.claim_next(conn, "alice", a, lease_s=60)
    review.rate(conn, item_id, "alice", a, 4, 4)
    b = _user(conn, "bob")
    review.claim_next(conn, "bob", b, lease_s=60)
    conn.execute("DELETE FROM users")
    assert sql("SELECT rater_id, rater_username FROM review_ratings") == [(None, "alice")]
    # Bob's lease outlives his account until it expires; the username still names it.
    assert sql("SELECT leased_to, lease_username FROM review_items") == [(None, "bob")]
    assert review.claim_next(conn, "alice", None, lease_s=60) is None  # rated already


def test_review_cli_enqueues_by_policy_file_and_reports(conn, db_url, tmp_path, sql):
    import json

    from typer.testing import CliRunner

    from diffwatch.cli import build

    for i in range(6):
        _gen(conn, i, version="v1" if i < 3 else "v2", deployment="canary" if i == 5 else "stable")
    policy = tmp_path / "policy.toml"
    policy.write_text("random_per_version = 2\nlow_clip_quantile = 0\ncanary_max = 5\n")
    args = ["--database-url", db_url, "--json"]
    res = CliRunner().invoke(
        build(), ["review", "enqueue", "--policy", str(policy), "--until", NOW.isoformat(), *args]
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["added_by_reason"]["random"] == 4 and out["added_by_reason"]["canary"] == 1
    assert out["queue"]["open_items"] == sql("SELECT count(*) FROM review_items")[0][0]
    stats = CliRunner().invoke(build(), ["review", "stats", *args])
    assert stats.exit_code == 0 and json.loads(stats.stdout)["open_items"] >= 4
    policy.write_text("random_per_version = -1\n")
    bad = CliRunner().invoke(build(), ["review", "enqueue", "--policy", str(policy), *args])
    assert bad.exit_code == 2 and "random_per_version" in bad.output
