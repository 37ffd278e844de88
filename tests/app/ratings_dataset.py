"""A rating dataset: scored generations of two versions, review items, three raters.

Items 0..17 are rated by all three raters, 18..23 by two, the rest by one, so agreement,
deviation and calibration all have data. Ratings go through ``diffwatch.db.queries.review.rate``
(the queue's own write path) and are then spread over the last 20 hours.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg

from diffwatch.db.queries.review import rate
from diffwatch.db.queries.rollups import refresh
from tests.app.accounts import add_account

RATERS = ("alice", "bob", "carol")
NSFW_VERSION = "nudenet-320n-abc123/t0.5/labels-deadbeef"
N = 30


@dataclass
class Seeded:
    """What was written, for tests to compute the expected figures from."""

    now: datetime
    version: dict[int, str] = field(default_factory=dict)  # item → model version
    deployment: dict[int, str] = field(default_factory=dict)  # item → deployment
    reasons: dict[int, list[str]] = field(default_factory=dict)
    clip: dict[int, float] = field(default_factory=dict)  # item → CLIP score
    nsfw: dict[int, tuple[float, bool]] = field(default_factory=dict)  # item → score, flag
    # (item, rater, quality, adherence, flags)
    ratings: list[tuple[int, str, int, int, list[str]]] = field(default_factory=list)


def _clamp(x: int) -> int:
    return max(1, min(5, x))


def seed_ratings(
    conninfo: str,
    raters: tuple[str, str, str] = RATERS,
    versions: tuple[str, str] = ("v1", "v2"),
    deployments: tuple[str, str] = ("stable", "canary"),
    gpu_type: str = "NVIDIA L4",
) -> Seeded:
    """Write the dataset (with rater accounts) and refresh the rollups. The names default
    to plain ones; the last rater rates 1 lower, the second version and deployment are the
    canary's."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    out = Seeded(now=now)
    ids = {r: add_account(conninfo, r, "rater") for r in raters}
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for i in range(N):
            canary = i % 2 == 1
            version, deployment = versions[canary], deployments[canary]
            ts = now - timedelta(hours=22) + timedelta(minutes=40 * i)
            (gid,) = conn.execute(
                "INSERT INTO generations (request_id, ts, model, model_version, prompt, status,"
                " batch_size, total_ms, gpu_type, deployment) VALUES (%s, %s, 'sdxl', %s, %s,"
                " 'ok', 1, 1500, %s, %s) RETURNING id",
                (f"rated-{i}", ts, version, f"a rated photo {i}", gpu_type, deployment),
            ).fetchone()
            clip = 12.0 + (i * 7) % 23 + 0.5 * (i % 3)
            score = round(((i * 37) % 100) / 100, 2)
            flagged = score >= 0.5
            conn.execute(
                "INSERT INTO scorer_results (generation_id, scorer, scorer_version, value,"
                " flagged) VALUES (%s, 'clip', 'clip-test', %s, NULL),"
                " (%s, 'nsfw', %s, %s, %s)",
                (gid, clip, gid, NSFW_VERSION, score, flagged),
            )
            reasons = (
                ["low_clip"]
                if clip < 16
                else ["nsfw_flagged"]
                if flagged and i % 3 == 0
                else ["canary", "random"]
                if canary and i % 5 == 0
                else ["random"]
            )
            k = 3 if i < 18 else 2 if i < 24 else 1
            (item,) = conn.execute(
                "INSERT INTO review_items (generation_id, reasons, required_ratings)"
                " VALUES (%s, %s, %s) RETURNING id",
                (gid, reasons, k),
            ).fetchone()
            out.version[item], out.deployment[item] = version, deployment
            out.reasons[item], out.clip[item], out.nsfw[item] = reasons, clip, (score, flagged)
            # Adherence follows CLIP loosely; quality is lower on v2; carol rates 1 lower.
            base_a = 1 + int((clip - 12) / 6)
            base_q = 4 - canary + (1 if i % 4 == 0 else 0)
            human_nsfw = score >= 0.6 or i in (3, 7)  # item 3: a miss (score 0.11)
            for j, rater in enumerate(raters[:k]):
                low = rater == raters[2]
                q = _clamp(base_q - low + (1 if (i + j) % 5 == 0 else 0))
                a = _clamp(base_a + (1 if (i * (j + 1)) % 4 == 3 else 0) - low)
                flags = ["nsfw"] if human_nsfw and (j == 0 or score >= 0.8) else []
                assert rate(conn, item, rater, ids[rater], q, a, flags)
                conn.execute(
                    "UPDATE review_ratings SET rated_at = %s"
                    " WHERE item_id = %s AND rater_username = %s",
                    (ts + timedelta(hours=1, minutes=7 * j), item, rater),
                )
                out.ratings.append((item, rater, q, a, flags))
        refresh(conn)
    return out
