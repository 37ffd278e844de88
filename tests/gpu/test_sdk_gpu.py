"""``watch`` on CUDA: GPU timing from CUDA events, peak memory, GPU name and index.

Run on the device machine: ``pytest -m gpu tests/gpu/test_sdk_gpu.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from diffwatch.sdk import GenerationLogger, watch
from tests.helpers import ListSink

pytestmark = [pytest.mark.gpu]


def test_cuda_records_hold_event_timing_peak_memory_and_the_gpu() -> None:
    import torch

    from diffwatch.demo.tiny_pipeline import build_tiny_pipeline

    # marked gpu: run where a GPU is; without one this fails rather than passes unseen
    assert torch.cuda.is_available(), "needs a CUDA GPU: run with -m gpu on the device"

    pipe = build_tiny_pipeline().to("cuda")
    pipe.set_progress_bar_config(disable=True)
    sink = ListSink()
    watched = watch(pipe, GenerationLogger(sink), model="tiny", model_version="v1")
    kw = {"num_inference_steps": 4, "height": 128, "width": 128}
    bare = pipe("a cat", generator=torch.Generator("cpu").manual_seed(5), **kw).images[0]
    seen = watched("a cat", generator=torch.Generator("cpu").manual_seed(5), **kw).images[0]
    assert np.asarray(bare).tobytes() == np.asarray(seen).tobytes()
    watched("a dog", num_images_per_prompt=2, **kw)
    for rec in sink.records:
        assert rec["gpu_index"] == torch.cuda.current_device()
        assert rec["gpu_type"] == torch.cuda.get_device_name(rec["gpu_index"])
        # CUDA events time the GPU work inside the call's wall time (plus timer slack)
        assert 0 < rec["inference_ms"] <= rec["total_ms"] + 5.0
        total_mib = torch.cuda.get_device_properties(rec["gpu_index"]).total_memory / 2**20
        assert 0 < rec["peak_gpu_mib"] < total_mib
    assert sink.records[1]["batch_size"] == 2 and sink.records[1]["seed"] != sink.records[2]["seed"]
