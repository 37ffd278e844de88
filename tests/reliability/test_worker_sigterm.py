"""SIGTERM stops ``diffwatch score --follow`` within 10 s even while a read is stuck: the
batch in flight is abandoned, nothing of it is written."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

from diffwatch.collectors.logs.collector import LogCollector
from tests.helpers import cli_env, diffwatch_cmd, numbered_line
from tests.listener import SilentListener


@pytest.mark.timeout(240)
def test_sigterm_stops_a_worker_whose_read_is_stuck(tmp_path, db_url, conninfo, sql) -> None:
    with SilentListener() as server:
        # A real stuck read: an allowed ftp:// root whose server accepts and never answers,
        # with a read timeout far longer than the test.
        root = f"ftp://127.0.0.1:{server.port}/images"
        log = tmp_path / "gen.jsonl"
        log.write_bytes(numbered_line(1, image_uri=f"{root}/a.png"))
        assert LogCollector(conninfo, [str(log)]).run_once().ingested == 1
        env = cli_env(db_url) | {
            "HF_HUB_OFFLINE": "1",
            "DIFFWATCH_IMAGE_ROOTS": root,
            "DIFFWATCH_IMAGE_READ_TIMEOUT_S": "3600",
        }
        proc = subprocess.Popen(
            diffwatch_cmd("score", "--follow", "--scorers", "nsfw", "--device", "cpu", "--json"),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            if not server.wait_for_connection(180):
                proc.kill()
                raise AssertionError(f"the worker never started reading: {proc.communicate()}")
            time.sleep(1)  # the read is now stuck inside the ftp client
            assert sql("SELECT count(*) FROM scoring_leases") == [(1,)]
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=30)
            took = time.monotonic() - t0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert took < 10, f"SIGTERM took {took:.1f} s to stop the worker"
        assert proc.returncode == 0, err
        summary = json.loads(out.strip().splitlines()[-1])
        assert (summary["results"], summary["failures"]) == (0, 0)
        # Abandoned, never half-written: no result, no error, and the lease given back.
        assert sql("SELECT count(*) FROM scorer_results") == [(0,)]
        assert sql("SELECT count(*) FROM scoring_errors") == [(0,)]
        assert sql("SELECT count(*) FROM scoring_leases") == [(0,)]
