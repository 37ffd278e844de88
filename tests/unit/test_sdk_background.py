"""The SDK's bounded background worker: order kept, bounded queue, nothing dropped."""

from __future__ import annotations

import threading
import time

import pytest

from diffwatch.sdk.background import Background


def test_jobs_run_in_order_off_the_callers_thread() -> None:
    bg = Background(max_pending=8)
    seen: list[tuple[int, str]] = []
    for i in range(5):
        bg.submit(lambda i=i: seen.append((i, threading.current_thread().name)))
    assert bg.flush(5)
    assert [i for i, _ in seen] == list(range(5))
    assert all(name.startswith("diffwatch-sdk") for _, name in seen)
    assert bg.pending == 0 and bg.ran_inline == 0
    assert bg.close(5)


def test_a_full_queue_runs_the_job_on_the_caller_after_max_wait() -> None:
    gate = threading.Event()
    bg = Background(max_pending=1, max_wait_s=0.05)
    ran: list[str] = []
    bg.submit(lambda: (gate.wait(5), ran.append("first")))
    t0 = time.perf_counter()
    bg.submit(lambda: ran.append(threading.current_thread().name))
    waited = time.perf_counter() - t0
    assert 0.04 <= waited < 1.0  # waited max_wait_s, not for the blocked job
    assert ran == [threading.current_thread().name] and bg.ran_inline == 1
    gate.set()
    assert bg.flush(5) and ran[-1] == "first"


def test_flush_times_out_while_a_job_runs_and_close_finishes_it() -> None:
    gate = threading.Event()
    bg = Background()
    done: list[int] = []
    bg.submit(lambda: (gate.wait(5), done.append(1)))
    assert bg.flush(0.05) is False and bg.pending == 1
    gate.set()
    assert bg.close(5) and done == [1]
    bg.submit(lambda: done.append(2))  # usable again after close
    assert bg.flush(5) and done == [1, 2]


def test_a_failing_job_frees_its_slot() -> None:
    bg = Background(max_pending=1, max_wait_s=1.0)
    bg.submit(lambda: 1 / 0)
    ok: list[int] = []
    bg.submit(lambda: ok.append(1))
    assert bg.flush(5) and ok == [1] and bg.ran_inline == 0


@pytest.mark.parametrize("kw", [{"max_pending": 0}, {"max_wait_s": -1}])
def test_bad_bounds_are_refused(kw) -> None:
    with pytest.raises(ValueError):
        Background(**kw)
