"""``watch`` on the tiny diffusers pipeline: identical images, reproducible seeds, and
records that ``diffwatch collect logs`` stores with every field."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from diffwatch.cli import build
from diffwatch.model.log_record import FIELDS
from diffwatch.sdk import DirectorySink, GenerationLogger, HttpSink, ImageStore, watch
from tests.helpers import ListSink

torch = pytest.importorskip("torch")
SMALL = {"num_inference_steps": 2, "height": 64, "width": 64}


@pytest.fixture(scope="module")
def pipe(tmp_path_factory: pytest.TempPathFactory):
    from diffusers import StableDiffusionPipeline

    from diffwatch.demo.tiny_pipeline import save_tiny_pipeline

    directory = save_tiny_pipeline(tmp_path_factory.mktemp("tiny") / "pipe")
    p = StableDiffusionPipeline.from_pretrained(directory)
    p.set_progress_bar_config(disable=True)
    return p


def _gen(seed: int):
    return torch.Generator(device="cpu").manual_seed(seed)


def _bytes(images) -> list[bytes]:
    return [np.asarray(im).tobytes() for im in images]


def test_images_are_byte_identical_with_and_without_watch(pipe) -> None:
    sink = ListSink()
    watched = watch(pipe, GenerationLogger(sink), model="tiny", model_version="v1")
    bare = pipe("a red cube", generator=_gen(7), **SMALL).images
    seen = watched("a red cube", generator=_gen(7), **SMALL).images
    assert _bytes(bare) == _bytes(seen)
    # a batch with one generator per image, and numpy output
    kw = {**SMALL, "num_images_per_prompt": 2, "output_type": "np"}
    bare_np = pipe(["a", "b"], generator=[_gen(s) for s in range(4)], **kw).images
    seen_np = watched(["a", "b"], generator=[_gen(s) for s in range(4)], **kw).images
    assert bare_np.tobytes() == seen_np.tobytes()
    first, batch = sink.records[0], sink.records[1:]
    assert first["seed"] == 7 and first["status"] == "ok" and first["batch_size"] == 1
    assert [r["seed"] for r in batch] == [0, 1, 2, 3]
    assert [r["prompt"] for r in batch] == ["a", "a", "b", "b"]
    assert all(r["batch_size"] == 4 and r["steps"] == 2 for r in batch)


def test_a_used_generator_logs_no_seed_rather_than_a_wrong_one(pipe) -> None:
    sink = ListSink()
    watched = watch(pipe, GenerationLogger(sink), model="tiny", model_version="v1")
    g = _gen(3)
    torch.randn(1, generator=g)
    watched("x", generator=g, **SMALL)
    assert "seed" not in sink.records[0]


def test_a_failing_sink_never_costs_the_caller_its_images(pipe, caplog) -> None:
    class Broken(ListSink):
        def write(self, line: bytes) -> None:
            raise OSError("disk full")

    watched = watch(pipe, GenerationLogger(Broken()), model="tiny", model_version="v1")
    bare = pipe("x", generator=_gen(1), **SMALL).images
    assert _bytes(watched("x", generator=_gen(1), **SMALL).images) == _bytes(bare)
    assert watched.log_failures == 1 and "could not log" in caplog.text


def test_the_drawn_seed_reproduces_the_image(pipe) -> None:
    sink = ListSink()
    watched = watch(pipe, GenerationLogger(sink), model="tiny", model_version="v1")
    one = watched("a blue sphere", **SMALL).images
    (seed,) = [r["seed"] for r in sink.records]
    assert _bytes(pipe("a blue sphere", generator=_gen(seed), **SMALL).images) == _bytes(one)
    # A batch: one seed per image, replayed at the same batch size (as drift regenerates;
    # CPU kernels may round differently at another batch size).
    two = watched("a blue sphere", num_images_per_prompt=2, **SMALL).images
    seeds = [r["seed"] for r in sink.records[1:]]
    assert len(set(seeds)) == 2 and all(isinstance(s, int) for s in seeds)
    gens = [_gen(s) for s in seeds]
    again = pipe("a blue sphere", num_images_per_prompt=2, generator=gens, **SMALL).images
    assert _bytes(two) == _bytes(again)


def _stored_as_written(sql, written: list[dict]) -> dict[str, dict]:
    """The generations rows, by request id, after checking each column against its record."""
    cols = ["ts" if f == "timestamp" else f for f in FIELDS]
    rows = sql(f"SELECT {', '.join(cols)}, extra FROM generations")
    stored = {r[0]: dict(zip([*cols, "extra"], r, strict=True)) for r in rows}
    assert set(stored) == {r["request_id"] for r in written}
    for rec in written:
        row = stored[rec["request_id"]]
        for field in FIELDS:
            col = "ts" if field == "timestamp" else field
            want = rec.get(field)
            if field == "timestamp":
                want = datetime.fromisoformat(want)
            assert row[col] == want, (field, row[col], want)
        assert row["extra"] == {k: v for k, v in rec.items() if k not in FIELDS}
    return stored


def test_records_land_in_postgres_with_every_field(pipe, tmp_path: Path, db_url, sql) -> None:
    logs = tmp_path / "logs"
    logger = GenerationLogger(
        DirectorySink(logs, max_bytes=1500),  # rotates between records
        images=ImageStore(str(tmp_path / "images")),
    )
    watched = watch(
        pipe, logger, model="tiny", model_version="v7", deployment="canary", team="search"
    )
    meta = {"dw_request_id": "req-A", "dw_fields": {"user_id": "u1", "queue_ms": 4.5}}
    watched("a green tree", negative_prompt="blurry", guidance_scale=6.5, generator=_gen(11),
            **meta, **SMALL)  # fmt: skip
    watched(["one", "two"], generator=[_gen(1), _gen(2)], **SMALL)
    with pytest.raises(ValueError):
        watched("bad size", num_inference_steps=2, height=63, width=64)
    logger.close()  # waits for the images stored on the watched pipeline's background thread
    written = [json.loads(x) for p in sorted(logs.iterdir()) for x in p.read_text().splitlines()]
    assert len(written) == 4 and len(list(logs.iterdir())) > 1

    res = CliRunner().invoke(
        build(), ["collect", "logs", str(logs / "gen-*.jsonl"), "--json", "--database-url", db_url]
    )
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["ingested"] == 4 and summary["rejected"] == 0

    stored = _stored_as_written(sql, written)

    ok = stored["req-A"]
    assert (ok["status"], ok["sampler"], ok["steps"], ok["cfg_scale"]) == ("ok", "PNDM", 2, 6.5)
    assert (ok["seed"], ok["width"], ok["height"], ok["batch_size"]) == (11, 64, 64, 1)
    assert (ok["negative_prompt"], ok["user_id"], ok["queue_ms"]) == ("blurry", "u1", 4.5)
    assert ok["deployment"] == "canary" and ok["host"] and ok["extra"] == {"team": "search"}
    assert ok["inference_ms"] > 0 and ok["total_ms"] >= ok["inference_ms"] * 0.99
    assert Path(ok["image_uri"]).is_file() and ok["image_uri"].endswith(".png")
    batch = [r for r in stored.values() if r["extra"].get("batch_request_id")]
    assert sorted(r["seed"] for r in batch) == [1, 2] and all(r["image_uri"] for r in batch)
    (err,) = [r for r in stored.values() if r["status"] == "error"]
    assert err["extra"]["error_kind"] == "ValueError" and "divisible by 8" in err["error"]
    assert err["image_uri"] is None and err["prompt"] == "bad size"


def test_records_sent_to_the_real_http_collector_land_with_every_field(
    pipe, tmp_path: Path, conninfo, sql
) -> None:
    from diffwatch.collectors.http.app import IngestOptions
    from diffwatch.collectors.http.serve import Running

    copy = ListSink()  # what was sent, to compare with what was stored
    with Running(IngestOptions(conninfo=conninfo, token="t0ken")) as server:
        sink = HttpSink(f"{server.url}/v1/generations", token="t0ken", flush_interval_s=0.05)

        class Tee:
            def write(self, line: bytes) -> None:
                copy.write(line)
                sink.write(line)

            def flush(self, timeout: float | None = None) -> bool:
                return sink.flush(timeout)

            def close(self, timeout: float | None = None) -> None:
                sink.close(timeout)

        logger = GenerationLogger(Tee(), images=ImageStore(str(tmp_path / "images")))
        watched = watch(pipe, logger, model="tiny", model_version="v8", deployment="shadow")
        watched("a house", negative_prompt="fog", generator=_gen(4), **SMALL)
        watched(["x", "y"], num_images_per_prompt=1, **SMALL)
        with pytest.raises(ValueError):
            watched("bad", num_inference_steps=2, height=65, width=64)
        assert watched.flush(20)
        watched.close(5)
    assert (sink.stats.sent, sink.stats.dropped, sink.stats.rejected) == (4, 0, 0)
    stored = _stored_as_written(sql, copy.records)
    assert sum(r["status"] == "error" for r in stored.values()) == 1
    assert all(r["image_uri"] for r in stored.values() if r["status"] == "ok")


class SlowStore(ImageStore):
    """A real local image store behind a slow link (each save takes ``delay`` s more)."""

    def __init__(self, base: str, delay: float) -> None:
        super().__init__(base)
        self.delay = delay

    def save(self, image) -> str:
        time.sleep(self.delay)
        return super().save(image)


def _slow(pipe, tmp_path: Path, delay: float, **kw) -> tuple[ListSink, Any]:
    """A watched ``pipe`` whose image store takes ``delay`` s a save; (its sink, it)."""
    sink = ListSink()
    logger = GenerationLogger(sink, images=SlowStore(str(tmp_path / "img"), delay))
    return sink, watch(pipe, logger, model="tiny", model_version="v1", **kw)


def test_a_slow_image_store_does_not_hold_up_the_caller_and_loses_nothing(
    pipe, tmp_path: Path
) -> None:
    sink, watched = _slow(pipe, tmp_path, 2.0)
    pipe("warm", generator=_gen(0), **SMALL)
    t0 = time.perf_counter()
    out = watched("a lamp", generator=_gen(3), **SMALL).images
    assert time.perf_counter() - t0 < 2.0, "the caller waited for the image store"
    # the caller reuses its image at once: what is stored is still the pipeline's
    out[0].paste((255, 0, 0), (0, 0, 64, 64))
    assert sink.records == []  # not yet: the record waits for its image_uri
    assert watched.flush(30)
    (rec,) = sink.records
    stored = Image.open(rec["image_uri"])
    bare = pipe("a lamp", generator=_gen(3), **SMALL).images[0]
    assert np.asarray(stored.convert("RGB")).tobytes() == np.asarray(bare).tobytes()
    assert watched.log_failures == 0


def test_a_full_queue_stores_the_images_on_the_callers_thread_rather_than_drop_them(
    pipe, tmp_path: Path
) -> None:
    sink, watched = _slow(pipe, tmp_path, 0.3, max_pending=1, max_wait_s=0.0)
    for i in range(4):
        watched(f"p{i}", generator=_gen(i), **SMALL)
    assert watched._background is not None and watched._background.ran_inline >= 1
    watched.close(10)
    assert sorted(r["prompt"] for r in sink.records) == ["p0", "p1", "p2", "p3"]
    assert all(Path(r["image_uri"]).is_file() for r in sink.records)


def test_without_background_records_are_written_before_the_call_returns(
    pipe, tmp_path: Path
) -> None:
    sink = ListSink()
    logger = GenerationLogger(sink, images=ImageStore(str(tmp_path / "img")))
    watched = watch(pipe, logger, model="tiny", model_version="v1", background=False)
    watched("a kite", generator=_gen(9), **SMALL)
    (rec,) = sink.records
    assert Path(rec["image_uri"]).is_file()
