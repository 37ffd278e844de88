"""Serving cost of both sides of a gate, measured on the same device in the same run.

For each serving batch size, the two pipelines generate the same batch of prompts in turn,
in an ABBA order (candidate, baseline, baseline, candidate, ...) after one untimed warm-up
call each, so that neither side gets a warm-up or a thermal advantage. Each call is timed
with the device synchronised; its wall time divided by the batch is one per-image latency
sample (ms). Peak GPU memory (MiB) is read per side from torch's allocator on CUDA.
Generation goes through the drift engine (``Regenerator``), as the gate's images do.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from diffwatch.drift.diffusion_load import LoadedPipeline

SIDES = ("candidate", "baseline")


@dataclass(frozen=True)
class ServingOptions:
    """``batch_sizes``: the serving batch sizes (images a call); ``repeats``: timed calls a
    side and batch size (ABBA-ordered)."""

    batch_sizes: tuple[int, ...] = (1,)
    repeats: int = 4

    def __post_init__(self) -> None:
        if not self.batch_sizes or any(b < 1 or b > 256 for b in self.batch_sizes):
            raise ValueError(
                f"--batch-sizes must be integers in 1..256, got {list(self.batch_sizes)}"
            )
        if not 1 <= self.repeats <= 1000:
            raise ValueError(f"--latency-repeats must be in 1..1000, got {self.repeats}")


@dataclass
class SideCost:
    """One side's measurements: per-image latency samples (ms) by batch size, peak GPU
    memory (MiB; None off CUDA) and its model load time (s)."""

    latency_ms: dict[int, list[float]] = field(default_factory=dict)
    peak_mib: float | None = None
    load_s: float | None = None


def weights_mib(pipe: Any) -> float:
    """Size of a pipeline's parameters and buffers (MiB), over its torch modules."""
    import torch

    total = 0
    for comp in getattr(pipe, "components", {}).values():
        if isinstance(comp, torch.nn.Module):
            for t in [*comp.parameters(), *comp.buffers()]:
                total += t.numel() * t.element_size()
    return total / 2**20


def _order(repeats: int) -> list[int]:
    """ABBA order of side indices for ``repeats`` calls a side: 0 1 1 0 0 1 1 0 ..."""
    out: list[int] = []
    for r in range(repeats):
        out += [0, 1] if r % 2 == 0 else [1, 0]
    return out


def _sync(device: str) -> Callable[[], None]:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.synchronize
    return lambda: None


def measure(
    pipelines: dict[str, LoadedPipeline],
    requests: Sequence[Any],
    overrides: dict[str, dict[str, Any]],
    opts: ServingOptions,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, SideCost]:
    """Time both sides on ``requests`` (RegenRequests; the first ``b`` make a batch of b)."""
    import dataclasses

    import torch

    from diffwatch.drift.regenerate import Regenerator

    costs = {s: SideCost() for s in SIDES}
    device = pipelines[SIDES[0]].device
    sync = _sync(device)
    cuda = device.startswith("cuda")
    total = len(opts.batch_sizes) * opts.repeats * 2
    done = 0

    def call(side: str, batch: Sequence[Any]) -> float:
        regen = Regenerator(pipelines[side], max_batch=len(batch))
        reqs = [dataclasses.replace(r, **overrides.get(side, {})) for r in batch]
        sync()
        t0 = time.perf_counter()
        outcomes = list(regen.run(reqs))
        sync()
        elapsed = time.perf_counter() - t0
        bad = [o for o in outcomes if o.image is None]
        if bad:
            raise RuntimeError(f"serving-cost call of the {side} failed: {bad[0].error}")
        return elapsed

    for b in opts.batch_sizes:
        batch = [requests[i % len(requests)] for i in range(b)]
        batch = [dataclasses.replace(r, key=f"{r.key}#{i}") for i, r in enumerate(batch)]
        for side in SIDES:  # warm-up, untimed
            call(side, batch)
        for idx in _order(opts.repeats):
            side = SIDES[idx]
            if cuda:
                torch.cuda.reset_peak_memory_stats()
                before = torch.cuda.memory_allocated()
            elapsed = call(side, batch)
            if cuda:
                # Both pipelines sit on the device: a side's peak is its own weights plus
                # what its call allocated on top of everything already there.
                extra = (torch.cuda.max_memory_allocated() - before) / 2**20
                peak = weights_mib(pipelines[side].pipe) + extra
                costs[side].peak_mib = max(costs[side].peak_mib or 0.0, peak)
            costs[side].latency_ms.setdefault(b, []).append(1000.0 * elapsed / b)
            done += 1
            if progress:
                progress(done, total)
    return costs
