"""Log-line corpus shared by unit and reliability tests: good records and bad lines.

Every bad line comes with a substring its rejection reason must contain, so a test shows
that the reason is the right one, not merely that the line was refused.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def good_record(i: int, **overrides: Any) -> dict[str, Any]:
    """A complete, valid record numbered ``i``."""
    rec: dict[str, Any] = {
        "request_id": f"req-{i:08d}",
        "timestamp": (NOW - timedelta(seconds=600 - i % 500)).isoformat(),
        "model": "sd15-prod",
        "model_version": "v1.4",
        "prompt": f"a red circle on a blue background #{i}",
        "status": "ok",
        "negative_prompt": "blurry",
        "sampler": "DPM++ 2M Karras",
        "steps": 25,
        "cfg_scale": 7.5,
        "seed": 1234 + i,
        "width": 512,
        "height": 512,
        "batch_size": 4,
        "queue_ms": 12.5,
        "inference_ms": 1830.0,
        "total_ms": 1851.2,
        "gpu_type": "NVIDIA H100 80GB HBM3",
        "host": "gen-01",
        "gpu_index": 0,
        "image_uri": f"/data/img/{i}.png",
        "user_id": "u-42",
        "deployment": "stable",
    }
    rec.update(overrides)
    return rec


def line(rec: Any) -> bytes:
    """One JSON line (without newline)."""
    return json.dumps(rec, ensure_ascii=False).encode()


def _without(field: str) -> bytes:
    rec = good_record(0)
    del rec[field]
    return line(rec)


def _with(**kw: Any) -> bytes:
    return line(good_record(0, **kw))


_future = (NOW + timedelta(hours=1)).isoformat()
_good = line(good_record(0))

# (kind, raw line, substring of the expected reason)
BAD_LINES: list[tuple[str, bytes, str]] = [
    ("not json", b"GET /healthz 200", "not valid JSON"),
    ("truncated json", _good[: len(_good) // 2], "not valid JSON"),
    ("json array", b'["request_id", "x"]', "must be a JSON object"),
    ("json string", b'"just a string"', "must be a JSON object"),
    ("json number", b"42", "must be a JSON object"),
    ("missing request_id", _without("request_id"), '"request_id" is missing'),
    ("missing timestamp", _without("timestamp"), '"timestamp" is missing'),
    ("missing model", _without("model"), '"model" is missing'),
    ("missing model_version", _without("model_version"), '"model_version" is missing'),
    ("missing prompt", _without("prompt"), '"prompt" is missing'),
    ("missing status", _without("status"), '"status" is missing'),
    ("unknown status", _with(status="done"), '"status" must be either "ok" or "error"'),
    ("steps zero", _with(steps=0), '"steps" must be a positive integer, got 0'),
    ("steps negative", _with(steps=-3), '"steps" must be a positive integer, got -3'),
    ("steps as string", _with(steps="25"), '"steps" must be a positive integer, got "25"'),
    ("steps as float", _with(steps=2.5), '"steps" must be a positive integer'),
    ("steps as bool", _with(steps=True), '"steps" must be a positive integer, got true'),
    ("negative queue_ms", _with(queue_ms=-1.0), '"queue_ms" must be a non-negative number'),
    ("negative inference_ms", _with(inference_ms=-5), '"inference_ms" must be a non-negative'),
    (
        "infinite total_ms",
        _good.replace(b'"total_ms": 1851.2', b'"total_ms": 1e999'),
        "number out of range; NaN and Infinity are not allowed",
    ),
    ("NaN literal", _good.replace(b'"cfg_scale": 7.5', b'"cfg_scale": NaN'), "not valid JSON"),
    (
        "Infinity literal",
        _good.replace(b'"cfg_scale": 7.5', b'"cfg_scale": Infinity'),
        "not valid JSON",
    ),
    ("naive timestamp", _with(timestamp="2026-11-21T11:00:00"), "has no UTC offset"),
    ("future timestamp", _with(timestamp=_future), "more than 5 minutes in the future"),
    ("epoch milliseconds", _with(timestamp=NOW.timestamp() * 1000), "epoch milliseconds?"),
    ("garbage timestamp", _with(timestamp="yesterday"), '"timestamp" must be an ISO 8601'),
    ("invalid utf-8", _good.replace(b"a red circle", b"a r\xe9d circle"), "not valid UTF-8"),
    ("raw NUL byte", _good.replace(b"a red", b"a\x00red"), "NUL byte"),
    ("escaped NUL", _good.replace(b"a red", b"a\\u0000red"), '"prompt" contains a NUL'),
    ("empty request_id", _with(request_id=""), '"request_id" must be a non-empty string'),
    ("numeric request_id", _with(request_id=7), '"request_id" must be a non-empty string'),
    ("seed over 64 bits", _with(seed=2**64), '"seed" must be an integer that fits in 64 bits'),
    ("negative width", _with(width=-512), '"width" must be a positive integer'),
    ("null prompt", _with(prompt=None), '"prompt" must be a string, got null'),
    ("negative gpu_index", _with(gpu_index=-1), '"gpu_index" must be a non-negative integer'),
    ("batch_size zero", _with(batch_size=0), '"batch_size" must be a positive integer'),
    ("utf-16 line", json.dumps(good_record(0)).encode("utf-16-le"), "NUL byte"),
    ("inf in unknown key", _good[:-1] + b', "tags": [1e999]}', "number out of range"),
    ("model as object", _with(model={"name": "sd"}), '"model" must be a non-empty string'),
    ("host as number", _with(host=3), '"host" must be a string or null, got 3'),
    ("lone surrogate", _good.replace(b"a red", b"a\\ud800red"), '"prompt" holds a lone UTF-16'),
    ("lone surrogate key", _good[:-1] + b', "\\udc00": 1}', "holds a lone UTF-16 surrogate"),
    ("nested too deep", _good[:-1] + b', "t": ' + b"[" * 5000 + b"]" * 5000 + b"}", "levels deep"),
    ("integer of 5000 digits", _good[:-1] + b', "n": ' + b"9" * 5000 + b"}", "number out of range"),
]
