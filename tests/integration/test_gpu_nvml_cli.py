"""``collect gpu --source nvml`` with the real nvidia-ml-py on the machine running the tests.

Without the NVIDIA driver (CI, laptops, this project's CPU machines) ``nvmlInit`` fails for
real and the command must give one clear error and store nothing. On a GPU host the same
test checks the other side: rows are stored (tests/gpu/test_nvml.py checks their ranges).
"""

from __future__ import annotations

import json

import pynvml
from typer.testing import CliRunner

from diffwatch.cli import build


def nvml_works_here() -> bool:
    """Ask nvidia-ml-py directly, bypassing diffwatch, whether NVML starts on this machine."""
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return False
    pynvml.nvmlShutdown()
    return True


def test_nvml_source_fails_clearly_without_the_driver_and_stores_otherwise(db_url, sql):
    res = CliRunner().invoke(
        build(),
        ["collect", "gpu", "--source", "nvml", "--once", "--json", "--database-url", db_url],
    )
    if not nvml_works_here():
        assert res.exit_code == 1, res.output
        err = res.stderr
        assert err.count("error:") == 1, err  # one error, no traceback
        assert "Traceback" not in res.output
        assert "nvmlInit failed" in err  # what was tried, and NVML's own reason
        assert "NVIDIA driver" in err and "nvidia-smi" in err  # why, and how to check
        assert "--source http://GPU_HOST:9400/metrics" in err  # the alternative
        assert res.stdout == ""
        assert sql("SELECT count(*) FROM gpu_samples") == [(0,)]
    else:
        assert res.exit_code == 0, res.output
        stored = json.loads(res.stdout.strip().splitlines()[-1])["samples_stored"]
        assert stored >= 1
        assert sql("SELECT count(*) FROM gpu_samples WHERE source = 'nvml'") == [(stored,)]
