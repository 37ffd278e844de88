"""Log lines for simulated requests, following the generation log record contract (pure)."""

from __future__ import annotations

from typing import Any

import msgspec

from diffwatch.demo.traffic import MODEL, SimRequest

_encode = msgspec.json.Encoder().encode


def log_record(req: SimRequest, image_uri: str | None) -> dict[str, Any]:
    """The JSON object the service logs for ``req`` (contract fields, then unknown keys)."""
    return {
        "request_id": req.request_id,
        "timestamp": req.ts.isoformat(timespec="milliseconds"),
        "model": MODEL,
        "model_version": req.version.version,
        "prompt": req.prompt,
        "status": req.status,
        "negative_prompt": req.negative_prompt,
        "sampler": req.sampler,
        "steps": req.steps,
        "cfg_scale": req.cfg_scale,
        "seed": req.seed,
        "width": req.width,
        "height": req.height,
        "batch_size": req.batch_size,
        "queue_ms": req.queue_ms,
        "inference_ms": req.inference_ms,
        "total_ms": req.total_ms,
        "gpu_type": req.slot.spec.name,
        "host": req.slot.host,
        "gpu_index": req.slot.index,
        "image_uri": image_uri,
        "error": req.error,
        "user_id": req.user_id,
        "deployment": req.version.deployment,
        # Not in the contract: the collector keeps these in the `extra` column.
        "client": req.client,
        "region": req.region,
    }


def log_line(req: SimRequest, image_uri: str | None) -> bytes:
    """One log line (with its newline), broken on purpose when ``req.defect`` says so."""
    rec = log_record(req, image_uri)
    if req.defect == "naive_timestamp":
        rec["timestamp"] = req.ts.replace(tzinfo=None).isoformat(timespec="milliseconds")
    elif req.defect == "bad_status":
        rec["status"] = "success"
    raw = _encode(rec)
    if req.defect == "truncated":
        # The service died mid-write; it restarted and went on at the next line.
        raw = raw[: len(raw) * 2 // 3]
    return raw + b"\n"
