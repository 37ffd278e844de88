"""``diffwatch gate run`` on CUDA (fp16, the production setting) with the tiny pipelines.

Run on the device machine: ``pytest -m gpu tests/gpu/test_gate_gpu.py``. What only a GPU
shows: peak GPU memory per side, the GPU and driver in the lineage, and that two runs of
the same pipeline in fp16 agree pair for pair (the noise comes from CPU generators).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from diffwatch.cli import build
from tests.helpers import tiny_clip_args

pytestmark = [pytest.mark.gpu]

POLICY = "[safety]\nmargin = 0.3\n[latency]\nmax_ratio = 1.5\n[memory]\nblocks = true\n"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import torch

    from diffwatch.demo.tiny_pipeline import save_tiny_pipeline

    if not torch.cuda.is_available():
        pytest.fail("a gpu-marked test ran without a CUDA GPU visible to torch: run it on a GPU")
    root = tmp_path_factory.mktemp("gate_gpu")
    suite = root / "suite.toml"
    suite.write_text(
        "[defaults]\nsteps = 10\nwidth = 256\nheight = 256\n"
        + "".join(f'[[prompts]]\nprompt = "a red fox number {i}"\n' for i in range(8))
    )
    (root / "policy.toml").write_text(POLICY)
    return {"root": root, "pipe": save_tiny_pipeline(root / "pipe"), "suite": suite}


def test_identical_pipelines_pass_on_cuda_with_memory_and_gpu_lineage(db_url, files):
    f = files
    res = CliRunner().invoke(
        build(),
        ["gate", "run", "--device", "cuda", "--json", "--candidate", str(f["pipe"]),
         "--baseline", str(f["pipe"]), "--suite", str(f["suite"]), "--seeds", "2",
         "--policy", str(f["root"] / "policy.toml"), "--batch-sizes", "1,4",
         *tiny_clip_args(f["root"] / "clip"), "--output-dir", str(f["root"] / "out"),
         "--database-url", db_url],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    s = json.loads([ln for ln in res.stdout.splitlines() if ln.startswith("{")][-1])
    m = {x["name"]: x for x in s["metrics"]}
    assert s["verdict"] == "pass"
    assert m["alignment"]["estimate"] == 0.0 and m["distribution"]["p_value"] == 1.0
    peak = m["memory"]["peak_mib"]
    assert peak["candidate"] > 0 and 0.9 <= m["memory"]["estimate"] <= 1.1, m["memory"]
    assert [b["batch_size"] for b in m["latency"]["batch_sizes"]] == [1, 4]
    env = s["candidate"]["environment"]
    assert env["gpu"] and env["cuda"] and s["candidate"]["precision"] == "fp16"
