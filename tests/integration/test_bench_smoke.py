"""Every benchmark script runs at its ``--smoke`` size and its JSON still holds together.

Scripts are found by globbing ``bench/*.py`` for a ``__main__`` block, so a new benchmark
without ``--smoke`` (or without checks here) fails this suite. Each runs as a subprocess,
as a person runs it, against the test PostgreSQL (scratch databases of its own) and on the
CPU; its timings mean nothing here, its shape, baselines and correctness fields must hold.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench"
TIMEOUT_S = 300  # a smoke run takes 5-35 s on a loaded 2-core machine


def bench_scripts() -> list[Path]:
    """The scripts under bench/ that run as programs."""
    return sorted(
        p for p in BENCH.glob("*.py") if 'if __name__ == "__main__":' in p.read_text("utf-8")
    )


def _positive(d: dict[str, Any], *keys: str) -> None:
    for k in keys:
        assert isinstance(d[k], int | float) and d[k] > 0, f"{k} = {d[k]!r}, expected > 0"


def _correct(res: dict[str, Any]) -> None:
    assert res["correct"]["ok"] is True, res["correct"]


def check_embeddings(res: dict[str, Any]) -> None:
    _correct(res)
    sc, se = res["scoring"], res["search"]
    # Scoring: the same images both ways, in ABBA rounds; every image scored once, and its
    # embedding stored only with embeddings on.
    assert [r["variant"] for r in sc["runs"]] == ["with", "without", "without", "with"]
    for r in sc["runs"]:
        assert r["claimed"] == sc["images"] and r["failures"] == 0
        assert r["embeddings_stored"] == (sc["images"] if r["variant"] == "with" else 0)
    _positive(sc["with_embeddings"], "images_per_s", "seconds")
    _positive(sc["without_embeddings"], "images_per_s", "seconds")  # the baseline
    _positive(sc, "ratio_with_vs_without")
    # The indexer (off the scoring path) moved every pending row into the HNSW index.
    # the two "with" rounds, and the warm-up's
    assert sc["indexer"]["worker_rows"]["rows"] >= sc["images"] * 2
    for key in ("spread_rows_1", "spread_rows"):
        _positive(sc["indexer"][key], "ms_per_embedding_per_connection", "rows_per_s")
    assert sc["clip"]["embedding_dims"] == 512  # full-width rows, as ViT-B-32 writes
    assert res["goals"] == {"scoring_cost_max": 0.15}
    assert isinstance(res["pass"]["scoring_cost"], bool)
    for store in (sc["storage"], se["storage"]):
        _positive(store, "bytes_per_embedding", "hnsw_bytes_per_embedding", "gib_per_million")
    # Search: the index against exact scans on the same held-out queries, with its recall.
    assert se["rows"] == se["storage"]["rows"] == 2_000 and se["load"]["index_build_s"] >= 0
    _positive(se["index"], "p50_ms", "p95_ms")
    _positive(se["exact"], "p50_ms", "p95_ms")  # the baseline
    _positive(se, "exact_vs_index_p50")
    assert se["correct"]["index_used_by_every_index_query"] is True
    assert 0.9 <= se["recall_at_20"] <= 1.0  # 2,000 rows: the index finds nearly all
    # Drift images: the CPU run (the baseline) finds the planted version and agrees with any
    # other backend run here.
    di = res["drift_images"]
    _positive(di["runs"]["cpu"], "seconds")
    assert di["correct"]["found_the_new_version"] and di["correct"]["backends_agree"]


def check_bias(res: dict[str, Any]) -> None:
    _correct(res)
    n = res["suite"]["images"]
    assert n == res["suite"]["prompts"] * res["suite"]["seeds"] > 0
    # engine, (probe, engine) x rounds: the baseline runs around every probe run
    assert res["order"][0] == res["order"][-1] == "engine" and "probe" in res["order"]
    assert len(res["baseline_engine_alone"]["runs"]) == len(res["probe"]["runs"]) + 1
    _positive(res["baseline_engine_alone"], "images_per_s")
    _positive(res["probe"], "images_per_s", "generation_images_per_s")
    _positive(res, "probe_ratio_vs_engine", "generation_inside_probe_ratio_vs_engine")
    assert res["goal_probe_ratio_vs_engine"] == 0.9 and isinstance(res["goal_met"], bool)
    for run in res["probe"]["runs"]:
        assert run["images"] == run["summary_images"] == run["pngs"] == n
        assert run["stored"] == {"done": n, "perceived": n, "image_uris": n}
        assert {"generate", "store", "perceive_background"} <= set(run["stages_s"])
        _positive(run["stages_s"], "generate", "perceive_background")
    alone = res["perception_alone"]
    for stage in ("perceive", "clip_embed_images", "nudenet_detect_batch", "png_save_pool"):
        _positive(alone[stage], "images_per_s")


def check_gate(res: dict[str, Any]) -> None:
    _correct(res)
    _positive(res["baseline_engine_alone"], "images_per_s", "seconds")
    _positive(res["gate"], "wall_s", "generation_images_per_s", "share_generating")
    _positive(res, "generation_ratio_vs_engine")
    assert res["gate"]["share_generating"] < 1
    assert res["images"] == 2 * res["prompts"]  # both sides of every prompt
    assert {"generate", "score", "store", "serving_cost", "report"} <= set(res["gate"]["stages_s"])


def check_ingest(res: dict[str, Any]) -> None:
    _correct(res)
    c, good, bad = res["correct"], res["good_records"], res["bad_lines"]
    assert good + bad == res["records"] and bad > 0
    # Rows ingested equal rows written; every bad line is a rejection, every variant complete.
    assert c["generations_count"] == [good] and c["rejected_records_count"] == [bad]
    assert c["copy_count"] == [good] and c["executemany_count"] == [res["executemany"]["rows"]]
    assert res["collector"]["command"].startswith("python -m diffwatch.cli collect logs")
    _positive(res["collector"], "seconds", "rows_per_s", "reported_rows_per_s")
    _positive(res["copy"], "seconds", "rows_per_s")  # the baseline
    _positive(res["executemany"], "seconds", "rows_per_s")
    _positive(res, "ratio_vs_copy", "ratio_vs_executemany", "copy_vs_executemany")
    assert res["goals"] == {"vs_copy": 0.6, "vs_executemany": 2.0}
    assert set(res["pass"]) == {"vs_copy", "vs_executemany"}
    # The tables that reference generations are emptied with it (TRUNCATE refuses otherwise).
    assert {"generations", "drift_items", "scorer_results"} <= set(
        res["truncated_between_variants"]
    )


def check_http_ingest(res: dict[str, Any]) -> None:
    _correct(res)
    c, good, bad = res["correct"], res["good_records"], res["bad_lines"]
    assert good + bad == res["records"] and bad > 0
    # Both variants store every good row once and reject every bad line, with reasons
    # answered over HTTP for each; the server never needed a retry on an idle database.
    assert c["logs_generations"] == c["http_generations"] == [good]
    assert c["logs_rejected_records"] == c["http_rejected_records"] == [bad]
    assert c["http_accepted"] == [good] and c["http_rejected_answered"] == [bad]
    assert res["http"]["command"].startswith("python -m diffwatch.cli collect http")
    assert res["logs"]["command"].startswith("python -m diffwatch.cli collect logs")
    _positive(res["http"], "seconds", "rows_per_s", "batches")
    _positive(res["logs"], "seconds", "rows_per_s")  # the baseline, same run
    _positive(res, "ratio_http_vs_logs")
    assert {"generations", "rejected_records"} <= set(res["truncated_between_variants"])


def check_alerts(res: dict[str, Any]) -> None:
    _correct(res)
    ev, dl = res["evaluation"], res["delivery"]
    assert ev["errors"] == [] and ev["all_fire"]["errors"] == []
    assert ev["all_fire"]["emails_queued"] == ev["rules"] == ev["all_fire"]["charts"]
    _positive(ev["pass_ms"], "median")
    _positive(ev["baseline_metric_queries_pass_ms"], "median")  # the baseline
    _positive(ev, "overhead_ratio", "overhead_ratio_median_of_pairs")
    _positive(dl, "outbox_emails_per_s", "baseline_smtplib_emails_per_s")
    _positive(dl, "throughput_ratio_outbox_vs_smtplib", "avg_message_bytes")
    assert res["data"]["generations"] > 0 and res["data"]["gpu_samples"] > 0


def check_dashboard(res: dict[str, Any]) -> None:
    _correct(res)
    assert [s["label"] for s in res["stages"]] == ["small", "full"]
    assert res["stages"][-1]["generations"] == res["rows"]
    pages = set(res["stages"][0]["pages"])
    assert {"overview", "latency", "gpu", "cost", "quality"} <= pages
    for stage in res["stages"]:
        for page in stage["pages"].values():
            _positive(page, "rollup_p95_ms", "raw_median_ms", "speedup_p95_vs_raw")
    assert set(res["growth_p95_full_vs_small"]) == pages
    assert set(res["pass"]) == {"p95_ms", "speedup_vs_raw", "growth_10x"}


def check_prompt_drift(res: dict[str, Any]) -> None:
    _correct(res)  # the shared-permutation figures equal prompt_drift_test's, splits disjoint
    assert res["correct"]["combined_matches_prompt_drift_test"] is True
    assert "label" in res["embedders"]["tiny"]
    kinds = {row["kind"] for row in res["scenarios"]}
    assert {"null", "mix", "suffix"} <= kinds
    evidently = res["baseline"]["evidently"]
    # Evidently is a benchmark, not a dependency: where it is missing the baseline says why.
    assert "version" in evidently or "not installed" in evidently["skipped"]
    for row in res["scenarios"]:
        tiny = row["embedders"]["tiny"]
        # The demo's embedders combine lexical-first: the run flags what the words flag.
        assert tiny["order"] == "lexical-first"
        assert tiny["combined"]["flagged"] == row["lexical"]["flagged"]
        rates = [row["lexical"], tiny["embedding"], tiny["combined"], tiny["min_p"]]
        if "version" in evidently:
            rates.append(row["evidently"])
        for r in rates:
            assert 0.0 <= r["rate"] <= 1.0 and r["splits"] > 0
            assert r["ci95"][0] <= r["rate"] <= r["ci95"][1]
    assert set(res["acceptance"]) >= {"fpr_within_bound", "tiny_topical_power"}


def check_regenerate(res: dict[str, Any]) -> None:
    _correct(res)
    base = res["rows"][0]
    assert (base["config"], base["batch"], base["ratio_vs_default_batch1"]) == (
        "default_fp32",
        1,
        1.0,
    )
    _positive(res, "baseline_image_steps_per_s", "best_ratio_vs_default_batch1")
    assert any(r["config"].startswith("ours_eager") for r in res["rows"])
    for r in res["rows"]:
        _positive(r, "image_steps_per_s", "images_per_s", "ratio_vs_default_batch1")
    assert res["ours"]  # the engine's description of what it set up


def check_scoring(res: dict[str, Any]) -> None:
    _correct(res)
    for fmt, sets in res["end_to_end"].items():
        assert {"clip", "nsfw"} <= set(sets) == set(res["scorer_only"])
        for name, run in sets.items():
            _positive(run, "images_per_s")
            assert run["load_failures"] == 0
            for scorer in ("clip", "nsfw") if name == "both" else (name,):
                assert res["correct"][fmt][name][scorer] == {
                    "results": res["images"],
                    "in_range": True,
                }
        _positive(res["ratios"][fmt], "clip_vs_model_only", "nsfw_vs_nudenet_detect")
        _positive(res["decode_only"][fmt], "images_per_s")
    _positive(res["baseline_nudenet_detect"], "images_per_s")  # the NSFW baseline
    _positive(res["model_only"]["clip"], "items_per_s")  # the CLIP ceiling
    _positive(res["model_only"]["nsfw"], "items_per_s")
    assert res["nsfw"]["model"].startswith("NudeNet 320n")


def check_scoring_gpu_probe(res: dict[str, Any]) -> None:
    _correct(res)
    assert res["correct"]["loader_failures"] == 0
    for key in (
        "nvjpeg_decode",
        "clip_preprocess_device_tensors",
        "clip_scorer_device_tensors_with_tokens",
        "nsfw_scorer_device_tensors",
    ):
        _positive(res[key], "items_per_s")
    _positive(res, "loader_all_images_per_s")


def check_scoring_loader_probe(res: dict[str, Any]) -> None:
    _correct(res)
    assert res["import_s"] and all(s > 0 for s in res["import_s"].values())
    methods = [k for k, v in res.items() if isinstance(v, dict) and "call_s" in v]
    assert methods
    for m in methods:
        assert res[m]["call_s"] and all(s > 0 for s in res[m]["call_s"])


def check_scoring_probe(res: dict[str, Any]) -> None:
    _correct(res)
    assert set(res["decode"]) == {"jpeg", "png"}
    for row in res["decode"].values():
        assert any(k.startswith("load_images_threads_") for k in row)
        assert any(k.startswith("bare_pillow_threads_") for k in row)  # the floor


def check_startup(res: dict[str, Any]) -> None:
    _correct(res)  # every group listed in the top-level help, each with its own usage
    base, cmds = res["baseline_s"], res["commands_s"]
    assert base and all(s > 0 for s in base.values())  # the interpreter, the CLI library
    assert "diffwatch --help" in cmds and all(s > 0 for s in cmds.values())
    assert set(res["overhead_s"]) == set(cmds) == set(res["pass_by_command"])
    assert set(res["own_import_ms"]) == set(cmds) and all(res["own_modules"].values())
    assert res["goal_s"] > 0 and isinstance(res["pass"], bool)
    # Every group of the CLI contract is measured (the list comes from the code itself).
    groups = {k.split()[1] for k in cmds if k != "diffwatch --help"}
    assert {"db", "collect", "score", "drift", "alerts", "worker", "app", "demo", "users"} <= groups


def check_demo_clip(res: dict[str, Any]) -> None:
    _correct(res)
    assert res["correct"]["loaded_through_load_clip"] is True
    for side in ("trained", "baseline"):
        q = res[side]
        assert 0.0 <= q["retrieval_top1"] <= 1.0 and q["retrieval_pool"] == 100
        assert {g["kind"] for g in q["gaps"]} == {"colour", "shape", "count", "background"}
    assert res["train_s"] > 0 and res["options"]["steps"] == 5  # the smoke size


def check_sdk(res: dict[str, Any]) -> None:
    _correct(res)  # watched images byte-identical to the bare pipeline's, a record per call
    assert res["correct"]["identical_images"] is True
    assert res["order"][0] == res["order"][-1] == "bare"  # ABBA around the wrapped calls
    _positive(res["bare"], "median_ms")  # the baseline
    for variant in ("watch", "watch_images"):
        _positive(res[variant], "median_ms")
        assert res[variant]["own_ms_median"] >= 0
        assert len(res[variant]["runs_ms"]) == res["calls_per_variant"]
    assert {"watch_vs_bare", "watch_own_share_of_bare"} <= set(res["overhead"])
    for variant in ("watch_paired", "watch_images_paired"):
        assert res["overhead"][variant]["rounds"] == res["calls_per_variant"] // 2
    # images are stored on the background thread, one per watch_images call and warm-up
    assert res["correct"]["images_stored"] == res["calls_per_variant"] + 1
    assert res["goal_overhead_max"] == 0.01
    assert all(isinstance(v, bool) for v in res["pass"].values())


CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "alerts": check_alerts,
    "bias": check_bias,
    "demo_clip": check_demo_clip,
    "dashboard": check_dashboard,
    "embeddings": check_embeddings,
    "gate": check_gate,
    "http_ingest": check_http_ingest,
    "ingest": check_ingest,
    "prompt_drift": check_prompt_drift,
    "regenerate": check_regenerate,
    "scoring": check_scoring,
    "scoring_gpu_probe": check_scoring_gpu_probe,
    "scoring_loader_probe": check_scoring_loader_probe,
    "scoring_probe": check_scoring_probe,
    "sdk": check_sdk,
    "startup": check_startup,
}


def test_every_known_benchmark_is_found() -> None:
    """The glob finds the scripts (a broken discovery would pass everything vacuously)."""
    found = {p.stem for p in bench_scripts()}
    assert {"alerts", "dashboard", "ingest", "regenerate", "scoring"} <= found
    assert "records" not in found and "smoke" not in found  # helpers are not programs


@pytest.mark.parametrize("script", bench_scripts(), ids=lambda p: p.stem)
def test_smoke(script: Path, pg_admin_url: str) -> None:
    check = CHECKS.get(script.stem)
    assert check, (
        f"bench/{script.name} has no checks: add a check_{script.stem} to "
        f"{Path(__file__).name} (its JSON shape, baseline and correctness fields)"
    )
    env = {
        **os.environ,
        "DIFFWATCH_TEST_DATABASE_URL": pg_admin_url,  # the smoke runs' server
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(REPO),
    }
    env.pop("DIFFWATCH_DATABASE_URL", None)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(script), "--smoke"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    took = time.perf_counter() - t0
    assert proc.returncode == 0, (
        f"python bench/{script.name} --smoke exited {proc.returncode} after {took:.0f} s:\n"
        f"{proc.stderr[-4000:]}"
    )
    try:
        res = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(
            f"bench/{script.name} --smoke must print ONE JSON object on stdout ({exc}); "
            f"got:\n{proc.stdout[-2000:]}"
        ) from None
    assert isinstance(res, dict)
    assert res.get("smoke") is True, "the result says it was a smoke run"
    check(res)
