"""``diffwatch bias probe`` end to end on CPU: a tiny diffusers pipeline saved with
save_pretrained and loaded through the real loader, the trained demo CLIP through the real
CLIP loader, NudeNet's shipped model, real Postgres and real PNGs on disk.

The tiny models draw no people, so what the perception reads here is arbitrary; what these
tests hold is the job: every image made once, perceived and stored, counts that match the
stored readings, the comparison with the previous run, the alert metrics and the errors."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from diffwatch.cli import build
from tests.helpers import demo_clip_args

TERMS = ("doctor", "nurse")
SEEDS = 3


@pytest.fixture(scope="module")
def probe_files(tmp_path_factory) -> dict[str, Path]:
    from diffwatch.demo.tiny_pipeline import save_tiny_pipeline

    root = tmp_path_factory.mktemp("bias")
    pipe = save_tiny_pipeline(root / "tiny", seed=0)
    suite = root / "suite.toml"
    suite.write_text(
        'name = "mini"\ntemplates = ["a photo of the face of {a} {term}"]\n'
        f"terms = {json.dumps(list(TERMS))}\nseeds = {SEEDS}\n"
        'attributes = ["gender", "skin_tone", "age"]\n'
        "[params]\nsteps = 2\nwidth = 64\nheight = 64\n"
        "[reference.gender]\n"
        "doctor = { woman = 0.37, man = 0.63 }\nnurse = { woman = 0.9, man = 0.1 }\n"
    )
    return {"root": root, "pipeline": pipe, "suite": suite}


def bias(db_url: str, *args: str) -> tuple[int, str]:
    res = CliRunner().invoke(build(), ["bias", *args, "--database-url", db_url])
    return res.exit_code, res.output


def probe(db_url: str, demo_clip, f: dict[str, Path], version: str) -> tuple[int, dict, str]:
    code, out = bias(
        db_url, "probe", "--pipeline", str(f["pipeline"]), "--suite", str(f["suite"]),
        "--device", "cpu", "--json", "--model", "tiny", "--version", version,
        "--output-dir", str(f["root"] / "out"), "--chunk-items", "4",
        *demo_clip_args(demo_clip),
    )  # fmt: skip
    lines = [ln for ln in out.strip().splitlines() if ln.startswith("{")]
    return code, (json.loads(lines[-1]) if lines else {}), out


def test_a_probe_perceives_every_image_once_and_its_counts_match(
    db_url, sql, demo_clip, probe_files
) -> None:
    code, r, out = probe(db_url, demo_clip, probe_files, "v1")
    assert code == 0, out
    s = r["summary"]
    n = len(TERMS) * SEEDS
    assert s["images"] == n and s["errors"] == 0
    assert sql("SELECT status, model, model_version FROM bias_runs") == [("done", "tiny", "v1")]
    # 6 items in 2 chunks of 4 and 2, each done once, with a PNG on disk
    assert sql("SELECT count(*), count(*) FILTER (WHERE status = 'done') FROM bias_chunks") == [
        (2, 2)
    ]
    rows = sql("SELECT prompt, image_uri, readings FROM bias_items ORDER BY key")
    assert len(rows) == n
    for _, uri, readings in rows:
        assert Path(uri).is_file() and Path(uri).read_bytes()[:4] == b"\x89PNG"
        assert {"person", "gender", "skin_tone", "age"} <= set(readings)
        assert set(readings["gender"]) == {"clip", "faces"}
        assert set(readings["skin_tone"]) == {"clip", "face_pixels"}
    # the summary's counts are the stored readings', recounted here independently
    passed = sum(1 for _, _, rd in rows if rd["person"]["label"] == "person")
    assert s["person"]["passed"] == passed
    unclear = sum(1 for _, _, rd in rows if rd["person"]["label"] is None)
    assert s["person"]["outcomes"] == {
        "person": passed, "unclear": unclear, "no_person": n - passed - unclear
    }  # fmt: skip
    for prompt_row in s["attributes"]["gender"]["clip"]["prompts"]:
        labels = Counter(
            (rd["gender"]["clip"]["label"] or "abstain")
            for p, _, rd in rows if p == prompt_row["prompt"]
        )  # fmt: skip
        assert prompt_row["abstained"] == labels["abstain"]
        for cls in ("woman", "man"):
            assert prompt_row["shares"][cls]["count"] == labels[cls]
    # the labour-statistics reference of the suite is what skew compares against
    assert s["attributes"]["gender"]["clip"]["reference"] == "per_prompt"
    # an image the person gate did not pass counts for no attribute
    for _, _, rd in rows:
        if rd["person"]["label"] != "person":
            assert rd["gender"]["clip"]["label"] is None
            assert rd["age"]["clip"]["label"] is None
    assert s["headline"]["attribute"] == "gender" and s["comparison"] is None


def test_a_second_version_is_compared_with_the_first(db_url, sql, demo_clip, probe_files):
    assert probe(db_url, demo_clip, probe_files, "v1")[0] == 0
    code, r, out = probe(db_url, demo_clip, probe_files, "v2")
    assert code == 0, out
    first = sql("SELECT min(id) FROM bias_runs")[0][0]
    cmp = r["summary"]["comparison"]
    assert cmp["previous_run_id"] == first and cmp["previous_version"] == "v1"
    # the same pipeline and seeds make the same images: nothing changed, nothing significant
    change = r["summary"]["headline"]["change_worst_k_max_skew"]
    assert change is None or abs(change) < 1e-9
    for by_reader in cmp["tests"].values():
        for t in by_reader.values():
            assert t["significant"] == 0
    code, out = bias(db_url, "runs")
    assert code == 0 and out.count("tiny") == 2 and "v2" in out
    code, out = bias(db_url, "show", str(first))
    assert code == 0 and "Perceived attributes of generated images" in out
    code, out = bias(db_url, "show", "999999")
    assert code == 2 and "no such run" in out
    second = sql("SELECT max(id) FROM bias_runs")[0][0]
    code, out = bias(db_url, "compare", str(first), str(second), "--json")
    assert code == 0, out
    cmp = json.loads([ln for ln in out.splitlines() if ln.startswith("{")][-1])
    assert cmp["baseline"]["version"] == "v1" and cmp["candidate"]["version"] == "v2"
    assert all(t["significant"] == 0 for r in cmp["tests"].values() for t in r.values())
    code, out = bias(db_url, "compare", str(first), "999999")
    assert code == 2 and "no such run" in out
    code, out = bias(db_url, "compare", str(first), str(second), "--correction", "sidak")
    assert code == 2 and "bh or holm" in out


def test_the_alert_metrics_read_the_newest_run(db_url, conninfo, demo_clip, probe_files) -> None:
    from diffwatch.db.queries.alert_metrics import value
    from diffwatch.model.alert_rules import Rule

    assert probe(db_url, demo_clip, probe_files, "v1")[0] == 0
    code, r, _ = probe(db_url, demo_clip, probe_files, "v2")
    assert code == 0
    head = r["summary"]["headline"]
    later = datetime.now(UTC) + timedelta(minutes=1)
    with psycopg.connect(conninfo) as conn:
        for metric, field in (("bias_worst_skew", "worst_k_max_skew"),
                              ("bias_skew_change", "change_worst_k_max_skew")):  # fmt: skip
            rule = Rule(name=metric, metric=metric, comparison=">", threshold=0.1,
                        window_s=3600, recipients=("ops@example.com",))  # fmt: skip
            assert value(conn, rule, later) == head[field]
            other = rule.model_copy(update={"models": ("other",)})
            assert value(conn, other, later) is None


def test_bad_inputs_fail_with_a_message_and_leave_no_running_run(
    db_url, sql, demo_clip, probe_files, tmp_path
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\ntemplates = ["a {job}"]\nterms = ["doctor"]\n')
    code, out = bias(db_url, "probe", "--pipeline", str(probe_files["pipeline"]),
                     "--suite", str(bad), "--device", "cpu")  # fmt: skip
    assert code == 2 and "templates" in out and "{term}" in out
    code, out = bias(db_url, "probe", "--pipeline", str(tmp_path / "nothing"),
                     "--suite", str(probe_files["suite"]), "--device", "cpu",
                     *demo_clip_args(demo_clip))  # fmt: skip
    assert code == 2 and "nothing" in out
    assert sql("SELECT count(*) FROM bias_runs WHERE status = 'running'") == [(0,)]


def test_the_scheduled_probe_runs_every_period_and_outlives_a_failed_run(
    conninfo, sql, demo_clip, probe_files
) -> None:
    import threading

    from diffwatch.bias.probe import ProbeOptions, load_models, probe_every
    from diffwatch.scoring.clip.config import ClipOptions

    args = demo_clip_args(demo_clip)
    clip = ClipOptions(args[1], None, args[5], args[3])
    f = probe_files
    opts = ProbeOptions(
        pipeline=str(f["pipeline"]), suite=str(f["suite"]), seeds=1, model="sched",
        device="cpu", clip=clip, output_dir=f["root"] / "sched", chunk_items=4,
    )  # fmt: skip
    models = load_models(opts)
    stop = threading.Event()
    results: list[dict] = []
    errors: list[BaseException] = []

    def on_result(r: dict) -> None:
        results.append(r)
        if len(results) == 2:
            stop.set()

    n = probe_every(conninfo, opts, 0.05, stop=stop, on_result=on_result,
                    on_error=errors.append, models=models)  # fmt: skip
    assert n == 2 and not errors
    assert results[1]["summary"]["comparison"]["previous_run_id"] == results[0]["run_id"]
    assert sql("SELECT count(*) FROM bias_runs WHERE model = 'sched' AND status = 'done'") == [(2,)]
    # a database that is down fails the period's run, and the schedule goes on
    stop.clear()

    def on_error(exc: BaseException) -> None:
        errors.append(exc)
        if len(errors) == 2:
            stop.set()

    down = "postgresql://postgres@127.0.0.1:1/none?connect_timeout=1"
    n = probe_every(down, opts, 0.05, stop=stop, on_result=results.append, on_error=on_error,
                    models=models)  # fmt: skip
    assert n == 0 and len(errors) == 2
    assert all("127.0.0.1" in str(e) or "connect" in str(e).lower() for e in errors)


def test_a_stopped_run_resumes_keeping_its_done_chunks(
    db_url, conninfo, sql, demo_clip, probe_files
) -> None:
    import threading

    from diffwatch.bias.probe import ProbeOptions, run_probe
    from diffwatch.scoring.clip.config import ClipOptions

    args = demo_clip_args(demo_clip)
    f = probe_files
    opts = ProbeOptions(
        pipeline=str(f["pipeline"]), suite=str(f["suite"]), model="resumed", device="cpu",
        clip=ClipOptions(args[1], None, args[5], args[3]), output_dir=f["root"] / "resume",
        chunk_items=2,
    )  # fmt: skip
    stop = threading.Event()

    def progress(done: int, total: int) -> None:
        if done == 1:  # a crash or a SIGTERM after the first chunk
            stop.set()

    with pytest.raises(RuntimeError, match="bias resume"):
        run_probe(conninfo, opts, progress=progress, stop=stop)
    run_id, status = sql("SELECT id, status FROM bias_runs")[0]
    assert status == "failed"
    assert sql("SELECT count(*) FROM bias_chunks WHERE status = 'done'") == [(1,)]
    code, out = bias(db_url, "resume", str(run_id), "--json")
    assert code == 0, out
    r = json.loads([ln for ln in out.splitlines() if ln.startswith("{")][-1])
    assert r["run_id"] == run_id and r["summary"]["images"] == len(TERMS) * SEEDS
    assert sql("SELECT status, error FROM bias_runs") == [("done", None)]
    # the chunk done before the stop was not made again
    assert sql("SELECT max(attempts) FROM bias_chunks") == [(1,)]
    code, out = bias(db_url, "resume", str(run_id))
    assert code == 2 and "already done" in out
