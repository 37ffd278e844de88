"""Sufficient statistics of two model versions (or deployments) for their comparison.

Read from rollups only, never raw generations, except the human ratings: those come from
the review tables (``ratings_analytics.human_items``: one row per rated image, small). The
rollups hold counts, sums and latency histograms but no sums of squares, so the variance
of a mean comes from the spread of its time buckets (``diffwatch.analytics.intervals.ratio_mean``):
this module returns per-bucket sums, proportions' counts and merged histograms
(``diffwatch.model.version_metrics.VersionStats``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime

import psycopg

from diffwatch.db.queries.dashboard_filters import Filters, level, where
from diffwatch.model.version_metrics import BucketSums, Proportion, VersionStats

_MASK = "4294967295"
QualityRows = dict[tuple[str, str], dict[datetime, tuple[int, float, int, int]]]


@dataclass(frozen=True, slots=True)
class Side:
    """One side of a comparison: a label and the models/versions/deployments it covers.

    Non-empty fields replace the same fields of the page's ``Filters``; empty ones keep
    them (so ``Side("canary", deployments=("canary",))`` is every version on canary).
    """

    label: str
    models: tuple[str, ...] = ()
    versions: tuple[str, ...] = ()
    deployments: tuple[str, ...] = ()


def side_filters(f: Filters, side: Side) -> Filters:
    """The page's filters narrowed to one side."""
    return replace(
        f,
        models=side.models or f.models,
        versions=side.versions or f.versions,
        deployments=side.deployments or f.deployments,
    )


def _generations(
    conn: psycopg.Connection, f: Filters, w: int
) -> tuple[int, int, int, BucketSums, float]:
    """(requests, errors, images, (USD, images) per bucket on priced GPUs, unpriced h)."""
    cond, params = where(f, w, "r")
    requests = errors = images = 0
    unpriced_h = 0.0
    per_bucket: dict[datetime, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for bucket, req, err, img, inf_ms, price in conn.execute(
        "SELECT r.bucket, sum(r.requests), sum(r.errors), sum(r.images),"
        " sum(r.inference_sum_ms), max(p.usd_per_hour) FROM rollup_generations r"
        " LEFT JOIN gpu_prices p ON p.gpu_type = r.gpu_type"
        f" WHERE r.lvl = %(lvl)s AND {cond} GROUP BY r.bucket, r.gpu_type",
        params | {"lvl": level(f, None, need_gpu=True)},
    ):
        requests, errors, images = requests + int(req), errors + int(err), images + int(img)
        hours = float(inf_ms) / 3.6e6
        if price is None:
            unpriced_h += hours
        else:
            acc = per_bucket[bucket]
            acc[0] += hours * float(price)
            acc[1] += int(img)
    pairs = tuple((usd, n) for _, (usd, n) in sorted(per_bucket.items()))
    return requests, errors, images, BucketSums(pairs), unpriced_h


def _histogram(conn: psycopg.Connection, f: Filters, w: int) -> dict[int, int]:
    """Merged total_ms histogram ``{bin: count}`` of the side."""
    cond, params = where(f, w, "r")
    return {
        int(b): int(n)
        for b, n in conn.execute(
            f"SELECT e >> 32, sum(e & {_MASK}) FROM rollup_generations r, unnest(r.h_total) e"
            f" WHERE r.lvl = %(lvl)s AND {cond} GROUP BY 1",
            params | {"lvl": level(f, None)},
        )
    }


def _quality(conn: psycopg.Connection, f: Filters, w: int) -> QualityRows:
    """Per (scorer, version) and bucket: (value_n, value_sum, flag_n, flagged_n)."""
    cond, params = where(f, w)
    out: QualityRows = defaultdict(dict)
    for scorer, version, bucket, vn, vs, fn, fd in conn.execute(
        "SELECT scorer, scorer_version, bucket, sum(value_n), sum(value_sum), sum(flag_n),"
        f" sum(flagged_n) FROM rollup_quality WHERE {cond} AND scorer IN ('clip', 'nsfw')"
        " GROUP BY 1, 2, 3",
        params,
    ):
        out[(scorer, version)][bucket] = (int(vn), float(vs), int(fn), int(fd))
    return out


def _scored(rows: QualityRows, scorer: str, version: str) -> int:
    col = 0 if scorer == "clip" else 2
    return sum(r[col] for r in rows.get((scorer, version), {}).values())


def _pick_version(scorer: str, sides: list[QualityRows]) -> str | None:
    """The scorer version with the most results on the side that has fewer of them.

    Scores of different scorer versions are not comparable, so both sides are read at
    one version: preferably one that both sides have.
    """
    versions = {v for rows in sides for s, v in rows if s == scorer}
    if not versions:
        return None
    return max(
        sorted(versions),
        key=lambda v: (min(_scored(r, scorer, v) for r in sides), _scored(sides[0], scorer, v)),
    )


def _stats(
    label: str,
    gens: tuple[int, int, int, BucketSums, float],
    hist: dict[int, int],
    quality: QualityRows,
    clip_v: str | None,
    nsfw_v: str | None,
    w: int,
    rating: BucketSums | None = None,
) -> VersionStats:
    requests, errors, images, cost, unpriced_h = gens
    clip = quality.get(("clip", clip_v or ""), {})
    nsfw = quality.get(("nsfw", nsfw_v or ""), {})
    return VersionStats(
        label=label,
        requests=requests,
        images=images,
        errors=Proportion(errors, requests),
        latency_hist=hist,
        cost=cost,
        unpriced_gpu_hours=unpriced_h,
        clip=BucketSums(tuple((vs, float(vn)) for vn, vs, _, _ in (clip[b] for b in sorted(clip)))),
        clip_scorer_version=clip_v,
        nsfw=Proportion(sum(r[3] for r in nsfw.values()), sum(r[2] for r in nsfw.values())),
        nsfw_scorer_version=nsfw_v,
        rating=rating,
        width_s=w,
    )


def _ratings(conn: psycopg.Connection, f: Filters) -> BucketSums | None:
    """Mean human quality per rated image, one (mean, 1) pair per image (so each image
    counts once and the interval is clustered by image); None when nothing was rated."""
    from diffwatch.db.queries.ratings_analytics import human_items

    items = human_items(conn, f)
    return BucketSums(tuple((r.mean_quality, 1.0) for r in items)) if items else None


def compare_stats(
    conn: psycopg.Connection, f: Filters, baseline: Side, candidate: Side
) -> tuple[VersionStats, VersionStats]:
    """Sufficient statistics of both sides over the range, scorers read at common versions.

    Bucket width: the range's (``Filters.width``), the same for both sides. Cost uses the
    inference GPU time (h) × the hourly price (USD) of each priced GPU type, per image
    delivered on priced GPU types; unpriced GPU time is reported, not costed.
    """
    w = f.width()
    fs = [side_filters(f, s) for s in (baseline, candidate)]
    quality = [_quality(conn, g, w) for g in fs]
    clip_v, nsfw_v = _pick_version("clip", quality), _pick_version("nsfw", quality)
    a, b = (
        _stats(
            s.label,
            _generations(conn, g, w),
            _histogram(conn, g, w),
            q,
            clip_v,
            nsfw_v,
            w,
            _ratings(conn, g),
        )
        for s, g, q in zip((baseline, candidate), fs, quality, strict=True)
    )
    return a, b


def version_stats(conn: psycopg.Connection, f: Filters, side: Side) -> VersionStats:
    """Sufficient statistics of one side, scorers read at their most used versions."""
    w = f.width()
    g = side_filters(f, side)
    q = _quality(conn, g, w)
    return _stats(
        side.label,
        _generations(conn, g, w),
        _histogram(conn, g, w),
        q,
        _pick_version("clip", [q]),
        _pick_version("nsfw", [q]),
        w,
        _ratings(conn, g),
    )
