"""Image-embedding benchmark: what keeping CLIP image embeddings in pgvector costs the scoring
worker, and nearest-neighbour search over many stored embeddings, each beside its same-run
baseline, on one PostgreSQL server with pgvector.

1. **scoring**: the scoring worker end to end through Postgres (claim, load, score, write;
   ``diffwatch.scoring.build.build_worker``) with ``embeddings=True`` against the same
   scorers with ``embeddings=False``, in interleaved rounds (ABBA), each round on ``--images``
   fresh generations that point at the same image files. Goal: storing embeddings costs at
   most 15 % of the images/s. ``--prefill`` stored embeddings of the same CLIP version come
   first, so the index is populated, as in production. The worker writes pending rows (no
   vector index); then the indexer alone (``embeddings.index_pending``, what ``diffwatch
   worker`` runs) moves them, and as many rows spread like real embeddings, into the HNSW
   index: its rows/s, and the cost the worker would have had doing that itself. Then the
   storage: bytes per embedding (table, TOAST, indexes), GiB a million.
2. **search**: ``--n`` stored embeddings (clustered unit vectors near a low-dimensional
   manifold, not uniform noise), loaded by binary COPY with the HNSW index built after the
   load (``maintenance_work_mem`` raised, parallel workers), then top-``--k`` queries (held-out
   points of the same distribution) through ``embedding_reads.search`` with the index and
   with ``exact=True``: p50/p95 latency each, and recall@k of the index against exact.
3. **drift_images**: ``drift images`` end to end on ``--drift-images`` + as many stored
   embeddings (a version that renders half the reference's prompts differently), on the CPU
   (the baseline) and with the kernel sums on a GPU where torch sees one: seconds each.

The server is a private cluster of the embedded server's binaries (``pgserver`` ships
pgvector), started and removed by this script, unless ``--admin-url`` names a server with
pgvector. Prints ONE JSON object on stdout (also to ``--out``); progress on stderr.
Figures: docs/benchmarks.md ("Image embeddings").
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

REPO = Path(__file__).resolve().parents[1]
sys.path[:] = [str(REPO)] + [
    p for p in sys.path if Path(p or ".").resolve() not in (REPO, REPO / "bench")
]

from bench import smoke  # noqa: E402
from bench.ingest import progress, scratch_database  # noqa: E402
from diffwatch.db import migrate  # noqa: E402
from diffwatch.db.engine import raw_conninfo  # noqa: E402
from diffwatch.db.queries import embedding_reads as reads  # noqa: E402
from diffwatch.db.queries import embeddings as emb  # noqa: E402
from diffwatch.model.filters import Filters  # noqa: E402

GOALS = {"scoring_cost_max": 0.15}
SMOKE = {
    "device": "cpu", "clip_model": "tiny", "images": 16, "batch_size": 8,
    "prefill": 200, "repeats": 2, "n": 2_000, "centres": 50, "queries": 20, "exact_queries": 10,
    "shared_buffers": "128MB", "drift_images": 300,
}  # fmt: skip
SEARCH_VERSION = "bench-clip/synthetic-512"
ALL_TIME = Filters(datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
TINY_512 = "diffwatch-bench-tiny-clip-512"
LATENT_DIMS = 32  # the synthetic embeddings' manifold: CLIP's intrinsic dimension is tens


# ---------------------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------------------
def mwm_mb(args: argparse.Namespace) -> int:
    """maintenance_work_mem for the HNSW build (MiB): the whole graph in memory, so pgvector
    builds it in one pass (vector, element and 2·m level-0 neighbours, plus a quarter)."""
    if args.maintenance_work_mem:
        return args.maintenance_work_mem
    rows = max(args.n if "search" in args.parts else 0, args.prefill)
    return max(64, int(rows * (4 * args.dims + 1024) * 1.25 / 2**20) + 1)


def build_workers(args: argparse.Namespace) -> int:
    """Parallel workers for the index build (beside the leader)."""
    return args.build_workers if args.build_workers is not None else (os.cpu_count() or 2) - 1


@contextmanager
def pgvector_server(args: argparse.Namespace) -> Iterator[tuple[str, dict[str, Any]]]:
    """(admin URL, how it was set up) of a server with pgvector: ``--admin-url``, else a
    private cluster (tests/pgcluster.py: as root it runs as user ``pgserver``), removed after."""
    if args.admin_url:
        yield args.admin_url, {"kind": "given (--admin-url)"}
        return
    from tests.pgcluster import TempCluster

    cpus = os.cpu_count() or 2
    conf = {
        "shared_buffers": args.shared_buffers,
        "max_wal_size": "8GB",  # no forced checkpoints in the middle of a load
        "max_worker_processes": max(8, cpus + 2),
        "max_parallel_workers": max(8, cpus),
    }
    # pgvector builds a parallel HNSW graph in one dynamic shared memory segment of
    # maintenance_work_mem: where /dev/shm cannot hold it, use files in the data directory.
    shm = shutil.disk_usage("/dev/shm").free if Path("/dev/shm").is_dir() else 0
    if shm < 1.2 * mwm_mb(args) * 2**20:
        conf["dynamic_shared_memory_type"] = "mmap"
    root = Path(tempfile.mkdtemp(prefix="diffwatch-bench-embeddings-", dir=args.workdir))
    try:
        cluster = TempCluster(root)
        with (cluster.pgdata / "postgresql.auto.conf").open("a") as f:
            f.writelines(f"{k} = '{v}'\n" for k, v in conf.items())
        cluster.start()
        try:
            cluster.wait_ready()
            yield cluster.url, {"kind": "private cluster (pgserver's binaries)", "conf": conf}
        finally:
            cluster.destroy()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def server_info(admin_url: str) -> dict[str, Any]:
    """Version, pgvector and the settings that matter here."""
    with psycopg.connect(raw_conninfo(admin_url), autocommit=True) as conn:
        out: dict[str, Any] = {"version": conn.execute("SHOW server_version").fetchone()[0]}
        row = conn.execute(
            "SELECT default_version FROM pg_available_extensions WHERE name = 'vector'"
        ).fetchone()
        out["pgvector"] = row[0] if row else None
        for name in ("shared_buffers", "max_parallel_workers", "dynamic_shared_memory_type"):
            out[name] = conn.execute(f"SHOW {name}").fetchone()[0]
    if out["pgvector"] is None:
        raise SystemExit(f"{admin_url}: this server has no pgvector; leave out --admin-url")
    out["vector_type"] = emb.vector_type(out["pgvector"])
    return out


@contextmanager
def database(args: argparse.Namespace, admin_url: str, part: str) -> Iterator[str]:
    """A migrated scratch database for one part (dropped after)."""
    name = smoke.scratch_name(f"emb_{part}") if args.smoke else f"diffwatch_bench_emb_{part}"
    with scratch_database(admin_url, name, False) as url:
        migrate.upgrade(url)
        yield raw_conninfo(url)


def storage(conn: psycopg.Connection) -> dict[str, Any]:
    """Bytes on disk of the stored image embeddings: per row, table (heap + TOAST) vs
    indexes (primary key + HNSW), and GiB per million images at that rate."""
    rows, total, indexes, toast = conn.execute(
        "SELECT (SELECT count(*) FROM image_embeddings), pg_total_relation_size(c.oid),"
        " pg_indexes_size(c.oid), coalesce(pg_total_relation_size(c.reltoastrelid), 0)"
        " FROM pg_class c WHERE c.oid = 'image_embeddings'::regclass"
    ).fetchone()
    hnsw = conn.execute(
        "SELECT coalesce(sum(pg_relation_size(to_regclass(index_name))), 0) FROM embedding_spaces"
    ).fetchone()[0]
    prompts = conn.execute(
        "SELECT count(*), pg_total_relation_size('prompt_embeddings') FROM prompt_embeddings"
    ).fetchone()
    per = total / rows if rows else 0.0
    return {
        "rows": rows,
        "total_bytes": total,
        "bytes_per_embedding": round(per, 1),
        "table_bytes_per_embedding": round((total - indexes) / rows, 1) if rows else 0.0,
        "toast_bytes_per_embedding": round(toast / rows, 1) if rows else 0.0,
        "index_bytes_per_embedding": round(indexes / rows, 1) if rows else 0.0,
        "hnsw_bytes_per_embedding": round(int(hnsw) / rows, 1) if rows else 0.0,
        "gib_per_million": round(per * 1e6 / 2**30, 3),
        "prompt_embeddings": {"rows": prompts[0], "total_bytes": prompts[1]},
    }


# ---------------------------------------------------------------------------------------
# Synthetic embeddings and the fast load
# ---------------------------------------------------------------------------------------
class Clustered:
    """Unit vectors like CLIP's: ``centres`` clusters of Zipf-like popularity on a
    ``LATENT_DIMS``-dimensional manifold, a little isotropic noise, a shared direction."""

    def __init__(self, dims: int, centres: int, seed: int) -> None:
        rng = np.random.default_rng([seed, 1])
        self.dims = dims
        self.centres = rng.standard_normal((centres, LATENT_DIMS), dtype=np.float32)
        self.proj = rng.standard_normal((LATENT_DIMS, dims), dtype=np.float32) / np.sqrt(
            LATENT_DIMS
        )
        w = 1.0 / np.arange(1, centres + 1) ** 0.8
        self.weights = w / w.sum()
        mean = rng.standard_normal(dims).astype(np.float32)
        self.mean = mean / np.linalg.norm(mean)

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` rows (float32, L2-normalised)."""

        def unit(x: np.ndarray) -> np.ndarray:
            return x / np.linalg.norm(x, axis=1, keepdims=True)

        pick = rng.choice(len(self.centres), size=n, p=self.weights)
        z = self.centres[pick] + 0.4 * rng.standard_normal((n, LATENT_DIMS), dtype=np.float32)
        x = unit(z @ self.proj)
        x = unit(
            x + 0.3 * rng.standard_normal((n, self.dims), dtype=np.float32) / np.sqrt(self.dims)
        )
        return unit(x + 0.8 * self.mean).astype(np.float32)


def load_space(
    conninfo: str, version: str, vectors: np.ndarray, args: argparse.Namespace
) -> tuple[dict[str, Any], np.ndarray]:
    """Store ``vectors`` as image embeddings of ``version`` fast: generations (no image, so
    no worker claims them) by one INSERT ... SELECT, embeddings by binary COPY with the
    registered pgvector adapter, then ``ensure_space`` builds the HNSW index over them.
    Returns timings and each row's generation id."""
    n, dims = vectors.shape
    notices: list[str] = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        emb.register(conn)
        conn.add_notice_handler(lambda d: notices.append(d.message_primary))
        vtype = emb.support(conn).vector_type
        t0 = time.perf_counter()
        ids = [
            r[0]
            for r in conn.execute(
                "INSERT INTO generations (request_id, ts, model, model_version, prompt, status)"
                " SELECT %(tag)s || i, timestamptz '2026-11-01' + i * interval '2 seconds',"
                " 'sdxl', 'v' || (i %% 3), 'prompt ' || (i %% 5000), 'ok'"
                " FROM generate_series(1, %(n)s) i RETURNING id",
                {"tag": f"{version}-", "n": n},
            )
        ]
        t1 = time.perf_counter()
        wrap: Any = np.asarray
        if vtype == "halfvec":
            from pgvector import HalfVector as wrap
        with conn.transaction(), conn.cursor() as cur:
            skip_fk = False  # the ids were just made: skip the per-row foreign-key check
            with suppress(psycopg.errors.InsufficientPrivilege), conn.transaction():
                cur.execute("SET LOCAL session_replication_role = replica")
                skip_fk = True
            with cur.copy(
                "COPY image_embeddings (generation_id, scorer_version, embedding)"
                " FROM STDIN (FORMAT BINARY)"
            ) as copy:
                copy.set_types(["int8", "text", vtype])
                for gid, vec in zip(ids, vectors, strict=True):
                    copy.write_row((gid, version, wrap(vec)))
        t2 = time.perf_counter()
        conn.execute(f"SET maintenance_work_mem = '{mwm_mb(args)}MB'")
        conn.execute(f"SET max_parallel_maintenance_workers = {build_workers(args)}")
        conn.execute("SET min_parallel_table_scan_size = 0")  # the heap is small: TOAST
        emb.ensure_space(conn, version, dims, vtype)
        t3 = time.perf_counter()
        conn.execute("VACUUM ANALYZE image_embeddings")
        conn.execute("VACUUM ANALYZE generations")
    return {
        "rows": n,
        "generations_insert_s": round(t1 - t0, 2),
        "copy_s": round(t2 - t1, 2),
        "copy_rows_per_s": round(n / (t2 - t1)),
        "foreign_key_check_skipped_in_copy": skip_fk,
        "index_build_s": round(t3 - t2, 2),
        "index_built": "after the load (CREATE INDEX by ensure_space), "
        f"maintenance_work_mem {mwm_mb(args)} MB, up to {build_workers(args)} parallel workers",
        "vacuum_analyze_s": round(time.perf_counter() - t3, 2),
        # pgvector says so when the graph outgrew maintenance_work_mem (a slower build).
        "graph_fit_in_memory": not any("maintenance_work_mem" in m for m in notices),
        "notices": [m for m in notices if "does not exist, skipping" not in m],
    }, np.asarray(ids, dtype=np.int64)


# ---------------------------------------------------------------------------------------
# 1. Scoring with and without storing embeddings
# ---------------------------------------------------------------------------------------
def clip_options(args: argparse.Namespace, tmp: Path) -> tuple[Any, str]:
    """The CLIP to score with, and what its weights are."""
    from diffwatch.scoring.clip.config import ClipOptions

    if args.clip_checkpoint or args.clip_pretrained:
        weights = args.clip_checkpoint or f"pretrained {args.clip_pretrained}"
        return ClipOptions(
            args.clip_model, args.clip_pretrained, args.clip_checkpoint, args.clip_model_config
        ), weights
    if args.clip_model == "tiny":
        import open_clip
        import torch

        from diffwatch.demo.tiny_clip import register_clip_config, tiny_clip_config

        # The demo's tiny towers with ViT-B-32's 512-wide embeddings: a cheap model that
        # writes full-width rows, so the database's share of the time is at its largest.
        cfg = {**tiny_clip_config(), "embed_dim": 512}
        register_clip_config(tmp, TINY_512, cfg)
        torch.manual_seed(0)
        torch.save(open_clip.CLIP(**cfg).state_dict(), tmp / "tiny512.bin")
        return ClipOptions(
            TINY_512, None, str(tmp / "tiny512.bin"), str(tmp / f"{TINY_512}.json")
        ), "RANDOM"
    from bench.scoring import random_clip_checkpoint

    ckpt = random_clip_checkpoint(tmp, args.clip_model)
    return ClipOptions(args.clip_model, None, str(ckpt), args.clip_model_config), "RANDOM"


def add_generations(conninfo: str, tag: str, paths: list[str], texts: list[str]) -> None:
    """One generation per image file, request ids ``<tag>-<i>``, prompts made distinct per
    tag (so every round stores its own prompt embeddings too)."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO generations (request_id, ts, model, model_version, prompt, status,"
            " image_uri) SELECT %(tag)s || '-' || t.i, now(), 'sdxl', 'bench',"
            " t.prompt || ', ' || %(tag)s, 'ok', t.uri"
            " FROM unnest(%(uris)s::text[], %(prompts)s::text[]) WITH ORDINALITY t(uri, prompt, i)",
            {"tag": tag, "uris": paths, "prompts": texts},
        )


def stored(conninfo: str, tag: str) -> dict[str, int]:
    """Scores and image embeddings stored for the generations of ``tag``."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        res, embs = conn.execute(
            "SELECT (SELECT count(*) FROM scorer_results r JOIN generations g"
            "  ON g.id = r.generation_id WHERE g.request_id LIKE %(p)s),"
            " (SELECT count(*) FROM (SELECT generation_id FROM image_embeddings UNION ALL"
            "  SELECT generation_id FROM image_embeddings_pending) e JOIN generations g"
            "  ON g.id = e.generation_id WHERE g.request_id LIKE %(p)s)",
            {"p": f"{tag}-%"},
        ).fetchone()
    return {"results": int(res), "embeddings_stored": int(embs)}


def index_alone(conninfo: str, connections: int) -> dict[str, Any]:
    """The indexer's work alone (``diffwatch.embeddings.index.index_pending`` on
    ``connections`` connections): every embedding left pending moved into the HNSW index,
    with nothing else running; rows/s, and ms per embedding per connection."""
    from diffwatch.embeddings.index import index_pending

    with psycopg.connect(conninfo, autocommit=True) as conn:
        pending = emb.pending_count(conn)
    t = time.perf_counter()
    moved = index_pending(conninfo, connections=connections)
    spent = time.perf_counter() - t
    return {
        "rows": moved,
        "pending_before": pending,
        "connections": connections,
        "ms_per_embedding_per_connection": round(1000 * spent * connections / moved, 4)
        if moved
        else None,
        "rows_per_s": round(moved / spent, 1) if moved else None,
    }


def measure_scoring(args: argparse.Namespace, admin_url: str, tmp: Path) -> dict[str, Any]:
    """Part 1: the worker with and without embeddings, ABBA rounds on the same images."""
    from bench.roots import allow_images
    from bench.scoring_data import prompts, write_images
    from diffwatch.scoring.build import WorkerOptions, build_worker
    from diffwatch.scoring.scorers import resolve_device
    from diffwatch.scoring.worker import ScoringWorker

    n = args.images
    unique = args.unique_images or n
    progress(f"scoring: writing {args.repeats + 1} × {n:,} 512×512 JPEG files")
    allow_images(tmp)
    # A set of images a round (and one to warm up): pgvector stores a vector equal to one
    # already in the index as a duplicate of it, far cheaper than a new one, so no round
    # may see an image that an earlier round stored.
    sets: list[list[str]] = []
    for r in range(args.repeats + 1):
        (tmp / f"img{r}").mkdir()
        sets.append(
            write_images(tmp / f"img{r}", n, unique, ["jpeg"], seed=r * 1_000_003).paths["jpeg"]
        )
    texts = prompts(n)
    clip, weights = clip_options(args, tmp)
    opts = WorkerOptions(
        scorers=tuple(args.scorers.split(",")), device=args.device, clip=clip,
        batch_size=args.batch_size, load_processes=args.load_processes, name="bench-with",
    )  # fmt: skip
    with database(args, admin_url, "scoring") as conninfo:
        progress(f"scoring: loading {opts.scorers} on {args.device}")
        on = build_worker(conninfo, opts)
        off = ScoringWorker(
            conninfo, on.scorers, batch_size=on.batch_size, loader=on.loader.options,
            name="bench-without", embeddings=False,
        )  # fmt: skip
        workers = {"with": on, "without": off}
        clip_scorer = next(s for s in on.scorers if s.key.scorer == "clip")
        version, dims = clip_scorer.key.version, clip_scorer.embedding_dims
        prefill: dict[str, Any] = {"rows": 0}
        gen = Clustered(dims, args.centres, args.seed + 7)
        if args.prefill:
            progress(f"scoring: prefilling {args.prefill:,} embeddings of {version}")
            vecs = gen.draw(np.random.default_rng([args.seed, 7]), args.prefill)
            prefill = load_space(conninfo, version, vecs, args)[0]
        try:
            for name, w in workers.items():  # connections, space, loader, model warm-up
                add_generations(conninfo, f"warm-{name}", sets[-1], texts)
                w.run(threading.Event())
            # Fresh statistics for the claim queries: on the H100 host the first round after
            # the prefill ran 15x slower for both variants until autovacuum had analysed.
            with psycopg.connect(conninfo, autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE")
            runs = []
            for r in range(args.repeats):
                for name in ("with", "without") if r % 2 == 0 else ("without", "with"):
                    tag = f"round{r}-{name}"
                    add_generations(conninfo, tag, sets[r], texts)
                    summary = workers[name].run(threading.Event()).as_dict()
                    runs.append({"variant": name, **summary, **stored(conninfo, tag)})
                    progress(f"scoring: {tag}: {summary['images_per_s']} images/s")
        finally:
            on.close()
            off.close()
        with psycopg.connect(conninfo, autocommit=True) as conn:
            unstored = [r[0] for r in conn.execute(
                "SELECT id FROM generations WHERE request_id LIKE 'round%%-without-%%'"
                " ORDER BY id LIMIT 4096"
            )]  # fmt: skip
            scored = np.array([r[0] for r in conn.execute(
                "SELECT e.embedding::real[] FROM image_embeddings_pending e JOIN generations g"
                " ON g.id = e.generation_id WHERE g.request_id LIKE 'round%%-with-%%' LIMIT 1000"
            )], dtype=np.float32)  # fmt: skip
        # What the indexer then does (diffwatch worker's job), off the scoring path: the
        # worker's own rows, and as many rows spread like real embeddings (part 2's draw).
        many = max(1, min(8, (os.cpu_count() or 2) - 1))
        progress(f"scoring: the indexer alone ({many} connections), on the worker's rows")
        alone = {"worker_rows": index_alone(conninfo, many)}
        vecs = gen.draw(np.random.default_rng([args.seed, 8]), len(unstored))
        half = len(unstored) // 2
        for key, lo, hi, conns in (("spread_rows_1", 0, half, 1),
                                   ("spread_rows", half, len(unstored), many)):  # fmt: skip
            with psycopg.connect(conninfo, autocommit=True) as conn, conn.transaction():
                emb.register(conn)
                rows = zip(unstored[lo:hi], vecs[lo:hi], strict=True)
                with conn.cursor() as cur:
                    emb.store(cur, [emb.EmbeddingRow(g, version, e) for g, e in rows], [])
            progress(f"scoring: the indexer alone ({conns} connections), {hi - lo:,} spread rows")
            alone[key] = index_alone(conninfo, conns)
        with psycopg.connect(conninfo, autocommit=True) as conn:
            store = storage(conn)
    store["composition"] = (
        f"{prefill['rows']} prefilled (bulk-built index) + {store['rows'] - prefill['rows']} "
        "stored by the worker (pending, then moved one transaction at a time into the HNSW "
        "index by the indexer)"
    )
    out: dict[str, Any] = {
        "images": n, "unique_images": min(n, unique), "image": "512×512 JPEG q90",
        "image_sets": "one a round, scored by both variants, and one to warm up",
        "scorers": list(opts.scorers), "device": resolve_device(args.device),
        "clip": {"version": version, "embedding_dims": dims, "weights": weights},
        "batch_size": on.batch_size, "loader": {
            "processes": on.loader.options.processes, "threads": on.loader.options.threads,
        },
        "prefill": prefill, "rounds": "ABBA" * (args.repeats // 2) + "AB" * (args.repeats % 2),
        "runs": runs,
    }  # fmt: skip
    for name in ("with", "without"):
        mine = [r for r in runs if r["variant"] == name]
        secs = sum(r["elapsed_s"] for r in mine)
        out[f"{name}_embeddings"] = {
            "images_per_s": round(n * len(mine) / secs, 1),
            "seconds": round(secs, 3),
            "runs_images_per_s": [r["images_per_s"] for r in mine],
        }
    a, b = out["with_embeddings"], out["without_embeddings"]
    out["ratio_with_vs_without"] = round(a["images_per_s"] / b["images_per_s"], 4)
    out["cost"] = round(1 - out["ratio_with_vs_without"], 4)
    out["extra_ms_per_image"] = round(
        1000 * (a["seconds"] - b["seconds"]) / (n * len(a["runs_images_per_s"])), 4
    )
    pairs = [
        runs[i]["images_per_s"] / runs[i + 1]["images_per_s"]
        if runs[i]["variant"] == "with" else runs[i + 1]["images_per_s"] / runs[i]["images_per_s"]
        for i in range(0, len(runs), 2)
    ]  # fmt: skip
    out["ratio_per_round"] = [round(x, 4) for x in pairs]
    out["ratio_median_of_rounds"] = round(float(np.median(pairs)), 4)
    # Had the worker inserted into the HNSW index itself, each batch would have waited for
    # it: the cost it would have had, from the indexer's own ms per row.
    ms = alone["spread_rows_1"]["ms_per_embedding_per_connection"] or 0.0
    out["indexer"] = {
        **alone,
        "keeps_up_with_images_per_s": alone["spread_rows"]["rows_per_s"],
        "cost_had_the_worker_indexed": round(1 - 1 / (1 + b["images_per_s"] * ms / 1e3), 4),
        "basis": "diffwatch.embeddings.index.index_pending, nothing else running: the "
        "worker's rows, then synthetic rows spread like real embeddings (part 2's "
        "distribution) on one connection and on several",
        "mean_pair_cosine": {
            "synthetic": mean_pair_cosine(vecs),
            "scored": mean_pair_cosine(scored),
        },
        "note": "the worker writes pending rows (no vector index), so its own cost does not "
        "depend on this; rows that all point nearly the same way (random CLIP weights: see "
        "scored) insert into HNSW faster than rows spread like real embeddings",
    }
    out["storage"] = store
    per_scorer = len(opts.scorers)
    out["correct"] = {
        "every_image_scored_once_per_scorer": all(
            r["claimed"] == n and r["results"] == n * per_scorer and r["failures"] == 0
            for r in runs
        ),
        "embeddings_only_with": all(
            r["embeddings_stored"] == (n if r["variant"] == "with" else 0) for r in runs
        ),
    }
    out["correct"]["ok"] = all(out["correct"].values())
    return out


# ---------------------------------------------------------------------------------------
# 2. Search at scale
# ---------------------------------------------------------------------------------------
def hnsw_scans(conn: psycopg.Connection, version: str) -> int:
    """Scans of ``version``'s HNSW index so far (this backend's counts flushed first)."""
    try:
        conn.execute("SELECT pg_stat_force_next_flush()")
    except psycopg.errors.UndefinedFunction:  # before PostgreSQL 15: the collector lags
        time.sleep(1.0)
    row = conn.execute(
        "SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = %s",
        (emb.index_name(version),),
    ).fetchone()
    return int(row[0]) if row else 0


def mean_pair_cosine(x: np.ndarray) -> float | None:
    """Mean cosine between distinct rows of (at most the first 1,000 of) unit vectors ``x``."""
    x = x[:1000]
    if len(x) < 2:
        return None
    total = float(np.sum(x @ x.T)) - len(x)
    return round(total / (len(x) * (len(x) - 1)), 3)


def latency(ms: list[float]) -> dict[str, float]:
    """p50, p95, mean and max of latencies (ms)."""
    a = np.asarray(ms)
    return {
        "queries": len(ms),
        "p50_ms": round(float(np.percentile(a, 50)), 3),
        "p95_ms": round(float(np.percentile(a, 95)), 3),
        "mean_ms": round(float(a.mean()), 3),
        "max_ms": round(float(a.max()), 3),
    }


def measure_search(args: argparse.Namespace, admin_url: str) -> dict[str, Any]:
    """Part 2: load ``--n`` embeddings, then top-k by the HNSW index and by exact scan."""
    k, n = args.k, args.n
    gen = Clustered(args.dims, args.centres, args.seed)
    progress(f"search: drawing {n:,} {args.dims}-d clustered unit vectors")
    t0 = time.perf_counter()
    vectors = gen.draw(np.random.default_rng([args.seed, 2]), n)
    queries = gen.draw(np.random.default_rng([args.seed, 3]), args.queries)  # held out
    draw_s = time.perf_counter() - t0
    with database(args, admin_url, "search") as conninfo:
        progress(f"search: loading {n:,} rows, then building the HNSW index")
        load, ids = load_space(conninfo, SEARCH_VERSION, vectors, args)
        progress(f"search: loaded in {load['copy_s']} s, index in {load['index_build_s']} s")
        with psycopg.connect(conninfo, autocommit=True) as conn:
            emb.register(conn)
            sp = emb.space(conn, SEARCH_VERSION)
            for q in queries[: min(5, len(queries))]:  # warm the caches: index and exact
                reads.search(conn, sp, q, ALL_TIME, k=k)
            reads.search(conn, sp, queries[0], ALL_TIME, k=k, exact=True)
            scans0 = hnsw_scans(conn, SEARCH_VERSION)
            index_ms: list[float] = []
            exact_ms: list[float] = []
            found: list[tuple[list[int], list[int], list[float]]] = []
            for i, q in enumerate(queries):
                order = (False, True) if i % 2 == 0 else (True, False)
                got: dict[bool, list[reads.SearchHit]] = {}
                for exact in order if i < args.exact_queries else (False,):
                    t = time.perf_counter()
                    got[exact] = reads.search(conn, sp, q, ALL_TIME, k=k, exact=exact)
                    (exact_ms if exact else index_ms).append(1000 * (time.perf_counter() - t))
                if True in got:
                    ex = got[True]
                    found.append(
                        ([h.generation_id for h in got[False]], [h.generation_id for h in ex],
                         [h.similarity for h in ex])
                    )  # fmt: skip
            scans = hnsw_scans(conn, SEARCH_VERSION) - scans0
            store = storage(conn)
    # The exact answers against numpy's own.
    nq = len(found)
    truth = ids[np.argsort(-(queries[:nq] @ vectors.T), axis=1)[:, :k]]
    exact_agree = float(
        np.mean([len(set(f[1]) & set(t.tolist())) / k for f, t in zip(found, truth, strict=True)])
    )
    recall = [len(set(f[0]) & set(f[1])) / k for f in found]
    idx, ex = latency(index_ms), latency(exact_ms)
    out: dict[str, Any] = {
        "rows": n, "dims": args.dims, "k": k, "vector_type": sp.vector_type,
        "data": {
            "kind": f"{args.centres} Zipf-weighted clusters on a {LATENT_DIMS}-d manifold, "
            "isotropic noise, a shared direction; queries are held-out draws",
            "draw_s": round(draw_s, 2),
            "mean_pair_cosine": mean_pair_cosine(vectors),
            "exact_top1_similarity": round(float(np.mean([f[2][0] for f in found])), 3),
            f"exact_top{k}_similarity": round(float(np.mean([f[2][-1] for f in found])), 3),
        },
        "load": load, "hnsw": {"m": emb.HNSW_M, "ef_construction": emb.HNSW_EF_CONSTRUCTION,
                               "ef_search": max(reads.EF_SEARCH_MIN, 2 * k)},
        "index": idx, "exact": ex,
        "exact_vs_index_p50": round(ex["p50_ms"] / idx["p50_ms"], 2),
        "exact_vs_index_p95": round(ex["p95_ms"] / idx["p95_ms"], 2),
        f"recall_at_{k}": round(float(np.mean(recall)), 4),
        f"recall_at_{k}_min": round(float(np.min(recall)), 4),
        "storage": store,
        "latency_basis": "wall clock of embedding_reads.search() in Python (round trip, "
        "join to generations, rows fetched), warm caches, one connection, queries in turn; "
        f"the first {nq} queries run both ways, alternating which goes first",
    }  # fmt: skip
    out["correct"] = {
        "index_scans": scans,
        "index_used_by_every_index_query": scans >= len(index_ms),
        "exact_matches_numpy": round(exact_agree, 4),
        "full_answers": all(len(f[0]) == k and len(f[1]) == k for f in found),
    }
    out["correct"]["ok"] = bool(
        out["correct"]["index_used_by_every_index_query"] and exact_agree >= 0.95
        and out["correct"]["full_answers"]
    )  # fmt: skip
    return out


# ---------------------------------------------------------------------------------------
# 3. Image drift (placeholder)
# ---------------------------------------------------------------------------------------
def measure_drift_images(args: argparse.Namespace, admin_url: str) -> dict[str, Any]:
    """Part 3: ``drift images`` end to end (read from Postgres, the three comparisons, what
    moved, the run stored) on ``--drift-images`` + as many embeddings, on the CPU (numpy:
    the baseline) and, where torch sees a GPU, with the kernel sums on it; seconds each."""
    from diffwatch.drift.images import ImageDriftOptions, backend_for, run_image_drift

    n = args.drift_images
    gen = Clustered(args.dims, args.centres, args.seed + 11)
    rng = np.random.default_rng([args.seed, 11])
    # Reference: v1. Current: v1 again (other draws) and v2, which renders half of v1's
    # prompts from another distribution (other clusters): every comparison has work to do.
    ref = gen.draw(rng, n)
    cur_same = gen.draw(rng, n - n // 2)
    shifted = Clustered(args.dims, args.centres, args.seed + 12).draw(rng, n // 2)
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    rows = [(e, "v1", f"p{i}", i, t0 + timedelta(seconds=i)) for i, e in enumerate(ref)]
    rows += [(e, "v1", f"q{i}", i, t0 + timedelta(days=8, seconds=i))
             for i, e in enumerate(cur_same)]  # fmt: skip
    rows += [(e, "v2", f"p{i}", 10**6 + i, t0 + timedelta(days=8, seconds=i))
             for i, e in enumerate(shifted)]  # fmt: skip
    backends: dict[str, Any] = {"cpu": None}
    gpu = backend_for("auto")
    if gpu is not None:
        backends["gpu"] = gpu
    out: dict[str, Any] = {"reference": n, "current": n, "dims": args.dims, "runs": {}}
    with database(args, admin_url, "drift") as conninfo:
        progress(f"drift images: storing {2 * n:,} embeddings")
        _store_drift_rows(conninfo, rows)
        opts = ImageDriftOptions(
            current="1d", reference="8d", until=t0 + timedelta(days=9), max_images=n,
            permutations=200,
        )  # fmt: skip
        for name, backend in [*backends.items(), *backends.items()]:  # warm, then measured
            t = time.perf_counter()
            r = run_image_drift(conninfo, opts, backend=backend)
            out["runs"][name] = {
                "seconds": round(time.perf_counter() - t, 3),
                "backend": r["options"]["backend"],
                "attribution": r["attribution"],
                "overall_cmmd": round(r["overall"]["cmmd"], 6),
                "same_prompt_pairs": [t["pairs"] for t in r["same_prompts"]],
            }
            progress(f"drift images on {name}: {out['runs'][name]['seconds']} s")
    runs = out["runs"]
    if "gpu" in runs:
        out["gpu_vs_cpu"] = round(runs["cpu"]["seconds"] / runs["gpu"]["seconds"], 2)
    else:
        out["gpu"] = "no GPU visible to torch here: the CPU figure only"
    out["correct"] = {
        "found_the_new_version": runs["cpu"]["attribution"] in (
            "model changed", "model and traffic changed"
        ),
        "backends_agree": len({(r["attribution"], r["overall_cmmd"]) for r in runs.values()}) == 1,
    }  # fmt: skip
    out["correct"]["ok"] = all(out["correct"].values())
    return out


def _store_drift_rows(conninfo: str, rows: list[tuple]) -> None:
    """Generations and their indexed embeddings for part 3 (COPY, then the indexer)."""
    version = "bench-drift-clip"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        vt = emb.support(conn).vector_type
        emb.ensure_space(conn, version, rows[0][0].shape[0], vt)
        emb.register(conn)
        with conn.transaction(), conn.cursor() as cur:
            with cur.copy(
                "COPY generations (request_id, ts, model, model_version, prompt, status, seed)"
                " FROM STDIN"
            ) as copy:
                for i, (_, v, p, seed, ts) in enumerate(rows):
                    copy.write_row((f"drift-{i}", ts, "bench", v, p, "ok", seed))
            ids = [r[0] for r in cur.execute(
                "SELECT id FROM generations WHERE request_id LIKE 'drift-%%'"
                " ORDER BY substr(request_id, 7)::int"
            )]  # fmt: skip
            emb.store(cur, [emb.EmbeddingRow(g, version, r[0])
                            for g, r in zip(ids, rows, strict=True)], [])  # fmt: skip
        while emb.index_pending(conn):
            pass


# ---------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0].replace("\n", " ") + " Prints one JSON object.",
        epilog="Goal: the scoring worker with embeddings stored keeps >= 85 percent of its "
        "images/s without (cost <= 0.15). Search has no goal: its figures are the index "
        "against exact scans, and its recall. Random CLIP weights unless --clip-checkpoint "
        "or --clip-pretrained.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--parts", default="scoring,search,drift_images", help="parts to run")
    p.add_argument(
        "--admin-url", default=None, help="a server with pgvector (unset: a private one)"
    )
    p.add_argument("--shared-buffers", default="2GB", help="of the private server")
    p.add_argument(
        "--maintenance-work-mem", type=int, help="MiB for the HNSW build (unset: fits the graph)"
    )
    p.add_argument("--build-workers", type=int, help="index build workers (unset: cores - 1)")
    p.add_argument("--workdir", default=None, help="parent of the temporary directories")
    g = p.add_argument_group("1. scoring")
    g.add_argument("--images", type=int, default=4096, help="generations scored a round")
    g.add_argument(
        "--unique-images", type=int, help="distinct images a round (unset: all; repeats are "
        "stored as cheap duplicates by pgvector)",
    )  # fmt: skip
    g.add_argument("--repeats", type=int, default=4, help="rounds of both variants (ABBA..)")
    g.add_argument("--prefill", type=int, default=100_000, help="embeddings stored first")
    g.add_argument("--scorers", default="clip", help="clip or clip,nsfw")
    g.add_argument("--device", default="auto", help="auto, cuda, cuda:N or cpu")
    g.add_argument("--batch-size", type=int, default=None, help="unset: the worker's default")
    g.add_argument("--load-processes", type=int, default=None, help="unset: the worker's default")
    g.add_argument("--clip-model", default="ViT-B-32", help="open_clip name; tiny: 512-d tiny")
    g.add_argument("--clip-pretrained", default=None, help="open_clip tag of cached weights")
    g.add_argument("--clip-checkpoint", default=None, help="weights file (unset: random weights)")
    g.add_argument("--clip-model-config", default=None, help="open_clip config JSON")
    g = p.add_argument_group("2. search")
    g.add_argument("--n", type=int, default=1_000_000, help="stored embeddings")
    g.add_argument("--dims", type=int, default=512, help="embedding width")
    g.add_argument("--centres", type=int, default=4096, help="clusters of the synthetic data")
    g.add_argument("--k", type=int, default=20, help="neighbours a query")
    g.add_argument("--queries", type=int, default=500, help="queries through the index")
    g.add_argument("--exact-queries", type=int, default=50, help="of those, also exact")
    g.add_argument("--seed", type=int, default=0, help="random seed of the data")
    g = p.add_argument_group("3. drift images")
    g.add_argument(
        "--drift-images", type=int, default=5000, help="embeddings a window (reference, current)"
    )
    p.add_argument("--out", type=Path, help="also write the JSON here")
    smoke.add_smoke(p)
    args = smoke.parse(p, argv, SMOKE)
    args.parts = [s.strip() for s in args.parts.split(",") if s.strip()]
    bad = set(args.parts) - {"scoring", "search", "drift_images"}
    if bad:
        p.error(f"--parts: unknown {', '.join(sorted(bad))}")
    if args.exact_queries > args.queries or min(args.images, args.n, args.k, args.repeats) < 1:
        p.error("--exact-queries must be <= --queries; --images, --n, --k, --repeats >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Entry point: one JSON object on stdout."""
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # A stop signal unwinds normally, so the private server is stopped and removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    res: dict[str, Any] = {
        "benchmark": "embeddings", "smoke": bool(args.smoke),
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version()},
        "goals": GOALS,
    }  # fmt: skip
    with (
        tempfile.TemporaryDirectory(prefix="diffwatch-bench-emb-", dir=args.workdir) as d,
        pgvector_server(args) as (admin_url, how),
    ):
        res["server"] = {**server_info(admin_url), **how}
        progress(f"server: PostgreSQL {res['server']['version']}, pgvector "
                     f"{res['server']['pgvector']} ({res['server']['vector_type']})")  # fmt: skip
        if "scoring" in args.parts:
            res["scoring"] = measure_scoring(args, admin_url, Path(d))
        if "search" in args.parts:
            res["search"] = measure_search(args, admin_url)
        if "drift_images" in args.parts:
            res["drift_images"] = measure_drift_images(args, admin_url)
    if "scoring" in res:
        import torch

        res["machine"]["torch"] = torch.__version__
        if torch.cuda.is_available():
            res["machine"]["gpu"] = torch.cuda.get_device_name(0)
        res["pass"] = {"scoring_cost": res["scoring"]["cost"] <= GOALS["scoring_cost_max"]}
    parts = [res[p].get("correct") for p in ("scoring", "search", "drift_images") if p in res]
    parts = [c for c in parts if c is not None]
    res["correct"] = {"ok": all(c["ok"] for c in parts)}
    text = json.dumps(res, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0 if res["correct"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
