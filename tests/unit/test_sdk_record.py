"""Records the SDK builds are exactly what the log collector accepts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from diffwatch.collectors.logs.parse import Rejected, parse_line
from diffwatch.drift.samplers import resolve
from diffwatch.sdk import GenerationLogger, InvalidRecord, sampler_name
from diffwatch.sdk.record import build_record, encode_line
from tests.helpers import ListSink

BASE = {"model": "sd15", "model_version": "v1", "prompt": "a cat", "status": "ok"}


def test_a_built_record_gets_an_id_and_a_timestamp_and_parses_in_the_collector() -> None:
    rec = build_record({**BASE, "steps": 25, "seed": -5, "negative_prompt": None, "k": [1]})
    assert len(rec["request_id"]) == 32 and "negative_prompt" not in rec
    line = encode_line(rec)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    row = parse_line(line[:-1], datetime.now(UTC))
    assert not isinstance(row, Rejected), row
    assert json.loads(line)["steps"] == 25


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"steps": -3}, "steps"),
        ({"model": None}, "model"),
        ({"cfg_scale": float("nan")}, "NaN"),
        ({"prompt": "a\x00b"}, "NUL"),
        ({"prompt": "\ud800"}, "surrogate"),
        ({"timestamp": "2026-01-01T00:00:00"}, "timestamp"),
        ({"timestamp": (datetime.now(UTC) + timedelta(hours=1)).isoformat()}, "future"),
        ({"status": "done"}, "status"),
    ],
)
def test_what_the_collector_would_reject_is_refused_and_nothing_is_written(change, words) -> None:
    sink = ListSink()
    logger = GenerationLogger(sink)
    fields = {**BASE, **change}
    if change.get("model", "x") is None:
        del fields["model"]
    with pytest.raises(InvalidRecord, match=words):
        logger.log(fields)
    assert sink.lines == [] and logger.invalid == 1


def test_a_line_over_one_mebibyte_is_refused() -> None:
    with pytest.raises(InvalidRecord, match="byte limit"):
        encode_line(build_record({**BASE, "prompt": "x" * (1 << 20)}))


def test_defaults_merge_under_each_record() -> None:
    sink = ListSink()
    logger = GenerationLogger(sink, defaults={"host": "h1", "deployment": "canary"})
    rec = logger.log(BASE, deployment="shadow")
    assert (rec["host"], rec["deployment"]) == ("h1", "shadow")
    assert json.loads(sink.lines[0])["request_id"] == rec["request_id"]


def test_every_logged_sampler_name_resolves_back_to_its_scheduler() -> None:
    diffusers = pytest.importorskip("diffusers")
    from diffwatch.sdk.watch import _SAMPLER_NAMES

    for cls_name in _SAMPLER_NAMES:
        cls = getattr(diffusers, cls_name)
        for opts in ({}, {"use_karras_sigmas": True}, {"algorithm_type": "sde-dpmsolver++"}):
            if "algorithm_type" in opts and cls_name != "DPMSolverMultistepScheduler":
                continue  # the sampler table names the SDE variant of the multistep only
            try:
                sched = cls(**opts)
            except (TypeError, ValueError, NotImplementedError):
                continue
            if any(sched.config.get(k) != v for k, v in opts.items()):
                continue  # this scheduler does not take the option
            spec = resolve(sampler_name(sched))
            assert spec.scheduler == cls_name, (cls_name, opts, sampler_name(sched))
            for k, v in opts.items():
                assert spec.options.get(k) == v, (cls_name, opts, spec)
