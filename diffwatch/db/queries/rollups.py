"""SQL of the rollup refresh: raw rows → minute and hour buckets, exactly once.

Each raw table carries ``ingest_xid``, the top-level id of the transaction that inserted
the row. A refresh locks the watermark rows in ``rollup_state``, then takes a horizon
``hi`` (``pg_snapshot_xmin(pg_current_snapshot())``, or finer, the oldest transaction still
running in this database): every transaction that can write here with an xid below ``hi``
has finished, so the rows with ``lo <= ingest_xid < hi`` are final (committed and visible,
or rolled back and gone) and no later commit can add to that range. It adds those rows to
the rollups and moves the watermark to ``hi``, all in one transaction. The ranges of
successive refreshes tile the xid line, so each row is counted once; a crash rolls back
rollups and watermark together. See docs/rollups.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg

from diffwatch.model.filters import DEFAULT_MINUTE_RETENTION, HOUR, MINUTE

SOURCES = ("generations", "gpu_samples", "scorer_results")
IDLE_UTIL_PCT = 5.0  # a GPU reading under this utilisation (%) counts as idle
EPOCH = "timestamptz '1970-01-01 00:00:00+00'"

# The error's message up to its first ':', '.', '(' or ';', digits as '#': a kind that
# groups "timeout after 60000 ms ..." with "timeout after 30000 ms ...".
ERROR_KIND = (
    "left(coalesce(nullif(btrim(regexp_replace(substring(error FROM '^[^:.(;]*'),"
    " '[0-9]+', '#', 'g')), ''), 'unknown'), 80)"
)
# Grouping sets of rollup_generations; lvl = GROUPING(model, model_version, deployment,
# gpu_type): 0 full key, 1 no gpu, 2 no deployment, 3 model+version, 13 deployment,
# 14 gpu type, 15 everything.
_SETS = (
    "(b, model, model_version, deployment, gpu_type), (b, model, model_version, deployment),"
    " (b, model, model_version, gpu_type), (b, model, model_version), (b, deployment),"
    " (b, gpu_type), (b)"
)
_GEN_ROLLUP = f"""
INSERT INTO rollup_generations AS r (width_s, lvl, bucket, model, model_version, deployment,
    gpu_type, requests, errors, images, queue_n, queue_sum_ms, inference_n, inference_sum_ms,
    total_n, total_sum_ms, h_queue, h_inference, h_total)
SELECT %(w)s::int, GROUPING(model, model_version, deployment, gpu_type), b,
    coalesce(model, '*'), coalesce(model_version, '*'), coalesce(deployment, '*'),
    coalesce(gpu_type, '*'), count(*), count(*) FILTER (WHERE status = 'error'),
    coalesce(sum(coalesce(batch_size, 1)) FILTER (WHERE status = 'ok'), 0),
    count(queue_ms), coalesce(sum(queue_ms), 0), count(inference_ms),
    coalesce(sum(inference_ms), 0), count(total_ms), coalesce(sum(total_ms), 0),
    dw_hist_pack(array_agg(dw_hist_bin(queue_ms))),
    dw_hist_pack(array_agg(dw_hist_bin(inference_ms))),
    dw_hist_pack(array_agg(dw_hist_bin(total_ms)))
FROM (SELECT date_bin(make_interval(secs => %(w)s::int), ts, {EPOCH}) AS b, model, model_version,
             coalesce(deployment, '') AS deployment, coalesce(gpu_type, '') AS gpu_type,
             status, batch_size, queue_ms, inference_ms, total_ms
      FROM generations
      WHERE ingest_xid >= %(lo)s AND ingest_xid < %(hi)s AND ts >= %(since)s) d
GROUP BY GROUPING SETS ({_SETS})
ON CONFLICT (width_s, lvl, bucket, model, model_version, deployment, gpu_type) DO UPDATE SET
    requests = r.requests + EXCLUDED.requests, errors = r.errors + EXCLUDED.errors,
    images = r.images + EXCLUDED.images, queue_n = r.queue_n + EXCLUDED.queue_n,
    queue_sum_ms = r.queue_sum_ms + EXCLUDED.queue_sum_ms,
    inference_n = r.inference_n + EXCLUDED.inference_n,
    inference_sum_ms = r.inference_sum_ms + EXCLUDED.inference_sum_ms,
    total_n = r.total_n + EXCLUDED.total_n, total_sum_ms = r.total_sum_ms + EXCLUDED.total_sum_ms,
    h_queue = dw_hist_merge(r.h_queue, EXCLUDED.h_queue),
    h_inference = dw_hist_merge(r.h_inference, EXCLUDED.h_inference),
    h_total = dw_hist_merge(r.h_total, EXCLUDED.h_total)
"""
_ERR_ROLLUP = f"""
INSERT INTO rollup_errors AS r (width_s, bucket, model, model_version, deployment, gpu_type,
    kind, n)
SELECT %(w)s::int, date_bin(make_interval(secs => %(w)s::int), ts, {EPOCH}), model, model_version,
    coalesce(deployment, ''), coalesce(gpu_type, ''), {ERROR_KIND}, count(*)
FROM generations
WHERE ingest_xid >= %(lo)s AND ingest_xid < %(hi)s AND ts >= %(since)s AND status = 'error'
GROUP BY 2, 3, 4, 5, 6, 7
ON CONFLICT (width_s, bucket, model, model_version, deployment, gpu_type, kind)
DO UPDATE SET n = r.n + EXCLUDED.n
"""
_QUALITY_ROLLUP = f"""
INSERT INTO rollup_quality AS r (width_s, bucket, model, model_version, deployment, gpu_type,
    scorer, scorer_version, n, value_n, value_sum, flag_n, flagged_n, h_value)
SELECT %(w)s::int, date_bin(make_interval(secs => %(w)s::int), g.ts, {EPOCH}), g.model,
    g.model_version, coalesce(g.deployment, ''), coalesce(g.gpu_type, ''), s.scorer,
    s.scorer_version, count(*), count(s.value), coalesce(sum(s.value), 0), count(s.flagged),
    count(*) FILTER (WHERE s.flagged),
    dw_hist_pack(coalesce(array_agg(least(greatest(floor(s.value), 0), 100)::int)
        FILTER (WHERE s.scorer = 'clip' AND s.value IS NOT NULL), '{{}}'::int[]))
FROM scorer_results s JOIN generations g ON g.id = s.generation_id
WHERE s.ingest_xid >= %(lo)s AND s.ingest_xid < %(hi)s AND g.ts >= %(since)s
GROUP BY 2, 3, 4, 5, 6, 7, 8
ON CONFLICT (width_s, bucket, model, model_version, deployment, gpu_type, scorer,
    scorer_version)
DO UPDATE SET n = r.n + EXCLUDED.n, value_n = r.value_n + EXCLUDED.value_n,
    value_sum = r.value_sum + EXCLUDED.value_sum, flag_n = r.flag_n + EXCLUDED.flag_n,
    flagged_n = r.flagged_n + EXCLUDED.flagged_n,
    h_value = dw_hist_merge(r.h_value, EXCLUDED.h_value)
"""
_GPU_ROLLUP = f"""
INSERT INTO rollup_gpu AS r (width_s, bucket, host, gpu_index, mig_instance, gpu_name, n,
    util_n, util_sum, idle_n, mem_n, mem_used_sum_mib, mem_total_sum_mib, power_n,
    power_sum_w, minutes)
SELECT %(w)s::int, date_bin(make_interval(secs => %(w)s::int), ts, {EPOCH}), host, gpu_index,
    coalesce(mig_instance, ''), coalesce(gpu_name, ''), count(*), count(util_pct),
    coalesce(sum(util_pct), 0), count(*) FILTER (WHERE util_pct < %(idle)s),
    count(*) FILTER (WHERE mem_used_mib IS NOT NULL AND mem_total_mib IS NOT NULL),
    coalesce(sum(mem_used_mib) FILTER (WHERE mem_total_mib IS NOT NULL), 0),
    coalesce(sum(mem_total_mib) FILTER (WHERE mem_used_mib IS NOT NULL), 0),
    count(power_w), coalesce(sum(power_w), 0),
    bit_or(1::bigint << (floor(extract(epoch FROM ts) / 60)::bigint %% (%(w)s::int / 60))::int)
FROM gpu_samples
WHERE ingest_xid >= %(lo)s AND ingest_xid < %(hi)s AND ts >= %(since)s
GROUP BY 2, 3, 4, 5, 6
ON CONFLICT (width_s, bucket, host, gpu_index, mig_instance, gpu_name) DO UPDATE SET
    n = r.n + EXCLUDED.n, util_n = r.util_n + EXCLUDED.util_n,
    util_sum = r.util_sum + EXCLUDED.util_sum, idle_n = r.idle_n + EXCLUDED.idle_n,
    mem_n = r.mem_n + EXCLUDED.mem_n,
    mem_used_sum_mib = r.mem_used_sum_mib + EXCLUDED.mem_used_sum_mib,
    mem_total_sum_mib = r.mem_total_sum_mib + EXCLUDED.mem_total_sum_mib,
    power_n = r.power_n + EXCLUDED.power_n, power_sum_w = r.power_sum_w + EXCLUDED.power_sum_w,
    minutes = r.minutes | EXCLUDED.minutes
"""
_STATEMENTS = {
    "generations": (_GEN_ROLLUP, _ERR_ROLLUP),
    "gpu_samples": (_GPU_ROLLUP,),
    "scorer_results": (_QUALITY_ROLLUP,),
}
ROLLUP_TABLES = ("rollup_generations", "rollup_errors", "rollup_quality", "rollup_gpu")
_FAR_PAST = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class RefreshResult:
    """What one refresh rolled up: raw rows per source and the xid range [lo, hi)."""

    rows: dict[str, int]
    xid_from: dict[str, int]
    xid_to: int
    minute_since: datetime  # minute buckets older than this were pruned / not written


def _count(cur: psycopg.Cursor, source: str, lo: int, hi: int) -> int:
    row = cur.execute(
        f"SELECT count(*) FROM {source} WHERE ingest_xid >= %s AND ingest_xid < %s", (lo, hi)
    ).fetchone()
    return int(row[0]) if row else 0


# Running transactions of *this* database (and prepared ones), as full 64-bit xids derived
# from the 32-bit ids that pg_stat_activity shows: they are all below the snapshot's xmax.
_RUNNING_HERE = """
SELECT min(%(xmax)s - ((%(xmax)s - x::text::bigint) & 4294967295)) FROM (
    SELECT backend_xid AS x FROM pg_stat_activity
    WHERE datname = current_database() AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()
    UNION ALL
    SELECT transaction FROM pg_prepared_xacts WHERE database = current_database()
) running
"""


def _horizon(cur: psycopg.Cursor, minute_retention: timedelta) -> tuple[int, datetime]:
    """The xid below which every transaction that could write here has finished.

    Each query is its own statement, so its snapshot is taken after the watermark lock.
    Transactions of other databases cannot write here, so they need not hold the
    horizon back; but only a role that sees every session's xid in pg_stat_activity can
    tell them apart. Any other role uses the cluster-wide ``pg_snapshot_xmin``.
    """
    row = cur.execute(
        "SELECT pg_snapshot_xmin(s)::text::bigint, pg_snapshot_xmax(s)::text::bigint,"
        " date_trunc('minute', now() - %s),"
        " (SELECT rolsuper OR pg_has_role(current_user, 'pg_read_all_stats', 'MEMBER')"
        "  FROM pg_roles WHERE rolname = current_user)"
        " FROM pg_current_snapshot() s",
        (minute_retention,),
    ).fetchone()
    assert row is not None
    xmin, xmax, since, sees_all = int(row[0]), int(row[1]), row[2], bool(row[3])
    if not sees_all:
        return xmin, since
    # pg_stat_activity is read for the first time in this transaction here, after the
    # snapshot above: a transaction with an xid below xmax either shows here or is over.
    running = cur.execute(_RUNNING_HERE, {"xmax": xmax}).fetchone()
    here = running[0] if running else None
    return (xmax if here is None else min(xmax, int(here))), since


def refresh(
    conn: psycopg.Connection, minute_retention: timedelta = DEFAULT_MINUTE_RETENTION
) -> RefreshResult:
    """Roll up every raw row committed since the last refresh, in one transaction.

    Minute buckets are written only for rows newer than ``minute_retention`` before now,
    and older minute buckets are deleted; hour buckets are kept forever. Idempotent:
    a second call with nothing new committed changes nothing.
    """
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        # Inside a caller's transaction the horizon could come from an old snapshot (or
        # an old pg_stat_activity copy) and skip rows: the refresh must be its own.
        raise ValueError("rollups.refresh needs a connection outside any transaction")
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            "INSERT INTO rollup_state (source) SELECT unnest(%s::text[]) ON CONFLICT DO NOTHING",
            (list(SOURCES),),
        )
        # Row locks serialise concurrent refreshers; the second one then reads the first
        # one's new watermark (READ COMMITTED re-reads a locked row once it is released).
        lo = {
            s: int(x)
            for s, x in cur.execute(
                "SELECT source, xid_done FROM rollup_state WHERE source = ANY(%s)"
                " ORDER BY source FOR UPDATE",
                (list(SOURCES),),
            )
        }
        hi, since = _horizon(cur, minute_retention)
        rows: dict[str, int] = {}
        for source, statements in _STATEMENTS.items():
            start = lo[source]
            if start >= hi:
                rows[source] = 0
                continue
            rows[source] = _count(cur, source, start, hi)
            if rows[source]:
                for stmt in statements:
                    for w, from_ts in ((HOUR, _FAR_PAST), (MINUTE, since)):
                        cur.execute(
                            stmt,
                            {
                                "w": w,
                                "lo": start,
                                "hi": hi,
                                "since": from_ts,
                                "idle": IDLE_UTIL_PCT,
                            },
                        )
            cur.execute(
                "UPDATE rollup_state SET xid_done = greatest(xid_done, %s),"
                " rows_total = rows_total + %s, refreshed_at = now() WHERE source = %s",
                (hi, rows[source], source),
            )
        for table in ROLLUP_TABLES:
            cur.execute(f"DELETE FROM {table} WHERE width_s = %s AND bucket < %s", (MINUTE, since))
    return RefreshResult(rows, lo, hi, since)


@dataclass(frozen=True, slots=True)
class SourceState:
    """Freshness of one source's rollups: rows not rolled up yet, and the last refresh."""

    source: str
    rows_total: int
    pending: int
    refreshed_at: datetime | None


def state(conn: psycopg.Connection) -> list[SourceState]:
    """Per raw table: rows rolled up so far, rows still waiting, time of the last refresh."""
    out = []
    for source in SOURCES:
        row = conn.execute(
            "SELECT rows_total, xid_done, refreshed_at FROM rollup_state WHERE source = %s",
            (source,),
        ).fetchone()
        total, done, at = row if row else (0, 0, None)
        pending = conn.execute(
            f"SELECT count(*) FROM {source} WHERE ingest_xid >= %s", (done,)
        ).fetchone()
        out.append(SourceState(source, int(total), int(pending[0]) if pending else 0, at))
    return out


def rebuild(conn: psycopg.Connection) -> None:
    """Empty every rollup and reset the watermarks: the next refresh starts from scratch."""
    with conn.transaction():
        conn.execute(f"TRUNCATE {', '.join(ROLLUP_TABLES)}")
        conn.execute("UPDATE rollup_state SET xid_done = 0, rows_total = 0, refreshed_at = NULL")
