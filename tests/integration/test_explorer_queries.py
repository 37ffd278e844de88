"""Generation explorer search and detail on a real PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from diffwatch.db.queries.explorer import MAX_LIMIT, generation_detail, like_pattern, search
from diffwatch.model.filters import Filters

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WEEK = Filters(T0 - timedelta(days=7), T0 + timedelta(days=1))
PROMPTS = [
    ("r-cat", "A cat on a Café terrace, golden hour"),
    ("r-dog", "a dog in the snow"),
    ("r-pct", "50% off sale poster"),
    ("r-pct2", "500 off sale poster"),
    ("r-und", "snake_case sign"),
    ("r-und2", "snakeXcase sign"),
    ("r-bs", "back\\slash art"),
    ("r-bs2", "backslash art"),
    ("r-quote", "it's O'Brien'; DROP TABLE generations; --"),
    ("r-old", "an old cat photo"),
    ("r-other", "a cat in space"),
]


def _insert(conn: psycopg.Connection, request_id: str, prompt: str, ts: datetime, **kw) -> int:
    cols = {"model": "m", "model_version": "v1", "status": "ok", **kw}
    names = ", ".join(cols)
    marks = ", ".join(["%s"] * len(cols))
    row = conn.execute(
        f"INSERT INTO generations (request_id, prompt, ts, {names})"
        f" VALUES (%s, %s, %s, {marks}) RETURNING id",
        (request_id, prompt, ts, *cols.values()),
    ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
def ids(conninfo: str) -> dict[str, int]:
    out = {}
    with psycopg.connect(conninfo) as conn:
        for i, (rid, prompt) in enumerate(PROMPTS):
            ts = T0 - timedelta(minutes=i)
            kw: dict = {"deployment": "canary"}
            if rid == "r-old":
                ts = T0 - timedelta(days=30)
            if rid == "r-other":
                kw = {"model_version": "v2", "deployment": None}
            out[rid] = _insert(conn, rid, prompt, ts, **kw)
        # A generation whose prompt is another's request_id: the exact id hit comes first.
        out["r-echo"] = _insert(conn, "r-echo", "see r-dog for details", T0 + timedelta(hours=1))
    return out


def _ids(hits) -> list[str]:
    return [h.request_id for h in hits]


def test_request_id_exact_hit_first_even_outside_the_range(conninfo, ids) -> None:
    with psycopg.connect(conninfo) as conn:
        hits = search(conn, "r-dog", WEEK)
        old = search(conn, " r-old ", WEEK)
    assert [(h.request_id, h.match) for h in hits] == [
        ("r-dog", "request_id"),
        ("r-echo", "prompt"),
    ]
    assert (old[0].request_id, old[0].match, old[0].prompt) == (
        "r-old",
        "request_id",
        "an old cat photo",
    )


def test_substring_search_is_case_insensitive_unicode_and_newest_first(conninfo, ids) -> None:
    with psycopg.connect(conninfo) as conn:
        cat = search(conn, "CAT", WEEK)
        cafe = search(conn, "CAFÉ TERR", WEEK)
        canary = search(conn, "cat", Filters(WEEK.start, WEEK.end, deployments=("canary",)))
        unknown_dep = search(conn, "cat", Filters(WEEK.start, WEEK.end, deployments=("",)))
    # r-old is outside the range; r-cat (T0) is newer than r-other (T0 − 10 min).
    assert _ids(cat) == ["r-cat", "r-other"]
    assert {h.match for h in cat} == {"prompt"}
    assert _ids(cafe) == ["r-cat"] and cafe[0].prompt == "A cat on a Café terrace, golden hour"
    assert _ids(canary) == ["r-cat"] and _ids(unknown_dep) == ["r-other"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("50%", ["r-pct"]), ("e_c", ["r-und"]), ("k\\s", ["r-bs"]), ("%", ["r-pct"]),
     ("_", ["r-und"]), ("\\", ["r-bs"])],
)  # fmt: skip
def test_like_wildcards_in_the_input_match_literally(conninfo, ids, text, expected) -> None:
    with psycopg.connect(conninfo) as conn:
        assert _ids(search(conn, text, WEEK)) == expected


def test_like_pattern_escapes() -> None:
    assert like_pattern("a%b_c\\d") == "%a\\%b\\_c\\\\d%"


@pytest.mark.parametrize(
    "text",
    ["'; DROP TABLE generations; --", "O'Brien", "%' OR '1'='1", "\x00cat", "$$; SELECT 1"],
)
def test_injection_looking_input_is_just_text(conninfo, ids, text, sql) -> None:
    with psycopg.connect(conninfo) as conn:
        hits = search(conn, text, WEEK)
    assert sql("SELECT count(*) FROM generations")[0][0] == len(PROMPTS) + 1
    if "DROP" in text or "Brien" in text:
        assert _ids(hits) == ["r-quote"]
    elif "cat" in text:
        assert _ids(hits) == ["r-cat", "r-other"]  # NUL dropped
    else:
        assert hits == []


def test_limit_ordering_and_empty_text(conninfo, ids) -> None:
    with psycopg.connect(conninfo) as conn:
        two = search(conn, "a", WEEK, limit=2)
        recent = search(conn, "  ", WEEK, limit=3)
        capped = search(conn, "a", WEEK, limit=10**6)
        none = search(conn, "a", WEEK, limit=0)
    every_a = [rid for rid, p in PROMPTS if "a" in p.lower() and rid != "r-old"]
    assert _ids(two) == ["r-echo", *every_a][:2]  # r-echo (T0 + 1 h) is the newest
    assert _ids(recent) == ["r-echo", "r-cat", "r-dog"] and recent[0].match == "recent"
    assert len(capped) == len(every_a) + 1 <= MAX_LIMIT  # r-echo's prompt has an "a" too
    assert none == []


def test_detail_with_scores_and_errors(conninfo, ids) -> None:
    gid = ids["r-cat"]
    with psycopg.connect(conninfo) as conn:
        conn.execute(
            "UPDATE generations SET steps = 30, cfg_scale = 7.5, seed = 42, width = 512,"
            " height = 768, image_uri = 's3://b/cat.png', extra = %s WHERE id = %s",
            (json.dumps({"lora": "<b>x</b>"}), gid),
        )
        conn.execute(
            "INSERT INTO scorer_results (generation_id, scorer, scorer_version, value, flagged,"
            " details, worker) VALUES (%s, 'clip', 'c1', 31.5, NULL, %s, 'w1'),"
            " (%s, 'nsfw', 'n1', 0.02, false, '{}', 'w1')",
            (gid, json.dumps({"truncated": True, "n_tokens": 77}), gid),
        )
        conn.execute(
            "INSERT INTO scoring_errors (generation_id, scorer, scorer_version, kind, reason,"
            " transient, attempts) VALUES (%s, 'clip', 'c0', 'unreadable', 'bad PNG', true, 3)",
            (gid,),
        )
        d = generation_detail(conn, gid)
        plain = generation_detail(conn, ids["r-dog"])
        missing = generation_detail(conn, 10**9)
    assert d is not None and plain is not None and missing is None
    g = d.generation
    assert (g.request_id, g.prompt, g.steps, g.cfg_scale, g.seed) == (
        "r-cat", PROMPTS[0][1], 30, 7.5, 42
    )  # fmt: skip
    assert (g.width, g.height, g.image_uri, g.deployment) == (512, 768, "s3://b/cat.png", "canary")
    assert g.extra == {"lora": "<b>x</b>"}  # returned as data, not markup
    assert [(s.scorer, s.value, s.flagged) for s in d.scores] == [
        ("clip", 31.5, None), ("nsfw", 0.02, False)
    ]  # fmt: skip
    assert d.scores[0].details == {"truncated": True, "n_tokens": 77}
    e = d.scoring_errors[0]
    assert (e.scorer, e.kind, e.reason, e.transient, e.attempts) == (
        "clip", "unreadable", "bad PNG", True, 3
    )  # fmt: skip
    assert (plain.scores, plain.scoring_errors) == ((), ())


def test_empty_database(conninfo) -> None:
    with psycopg.connect(conninfo) as conn:
        assert search(conn, "cat", WEEK) == []
        assert search(conn, "", WEEK) == []
        assert generation_detail(conn, 1) is None


def test_substring_search_uses_the_opt_in_trigram_index_on_200k_rows(conninfo, sql) -> None:
    from diffwatch.db.queries import prompt_index

    assert not sql("SELECT 1 FROM pg_indexes WHERE indexname = 'ix_generations_prompt_trgm'")
    sql(
        "INSERT INTO generations (request_id, ts, model, model_version, prompt, status)"
        " SELECT 'bulk-' || i, %s::timestamptz - make_interval(secs => i), 'm', 'v1',"
        " 'prompt ' || lpad(to_hex(i * 2654435761 %% 4294967296), 8, '0') || ' of a landscape',"
        " 'ok'"
        " FROM generate_series(1, 200000) i",
        (T0,),
    )
    # One row's distinct 8-hex-digit tag (a multiplicative hash: a bijection on 32 bits).
    needle = f"{123456 * 2654435761 % 2**32:08x}"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        available = prompt_index.state(conn).available
        if available:
            prompt_index.create(conn)  # what `diffwatch db prompt-index` does
        else:  # pgserver's embedded PostgreSQL ships no pg_trgm: a clear error
            with pytest.raises(prompt_index.PromptIndexUnavailable, match="pg_trgm"):
                prompt_index.create(conn)
        conn.execute("ANALYZE generations")
        plan = conn.execute(
            "EXPLAIN (FORMAT JSON) SELECT id FROM generations WHERE prompt ILIKE %s"
            " ORDER BY ts DESC LIMIT 50",
            (like_pattern(needle.upper()),),
        ).fetchone()[0]
        hits = search(conn, needle.upper(), Filters(T0 - timedelta(days=30), T0 + timedelta(1)))
        assert [h.request_id for h in hits] == ["bulk-123456"]  # the same answer either way
        text = json.dumps(plan)
        if available:
            assert prompt_index.state(conn).present
            assert "ix_generations_prompt_trgm" in text, text
            prompt_index.drop(conn)
            assert not prompt_index.state(conn).present
        else:
            assert '"Seq Scan"' in text
