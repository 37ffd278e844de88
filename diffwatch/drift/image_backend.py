"""The image-drift kernel work on torch, on a CPU or a GPU (``KernelBackend`` of
``diffwatch.analytics.image_drift``). torch is imported when a backend is made, not before."""

from __future__ import annotations

from typing import Any

import numpy as np

# Rows per block of the float64 distance computation: 4M values (32 MiB) at most.
_BLOCK = 4_000_000


class TorchBackend:
    """Kernel matrix and quadratic forms with torch on ``device`` ("cpu", "cuda", "cuda:1");
    numpy arrays in and out, the same numbers as ``NumpyBackend`` up to float32 round-off."""

    def __init__(self, device: str = "cpu") -> None:
        import torch

        try:
            self.device = torch.device(device)
        except RuntimeError as exc:
            raise ValueError(
                f'device must name a torch device such as "cpu" or "cuda", got {device!r} ({exc})'
            ) from None
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(
                f"device {device!r} asks for a GPU, but torch sees no CUDA device here; use "
                '"cpu", or run on a machine with a GPU and a CUDA build of torch'
            )
        if self.device.type == "cuda" and (self.device.index or 0) >= torch.cuda.device_count():
            raise ValueError(
                f"device {device!r}: torch sees {torch.cuda.device_count()} CUDA device(s) "
                "here; use cuda:0 up to the last one"
            )
        self._torch: Any = torch

    def __repr__(self) -> str:
        return f"TorchBackend({str(self.device)!r})"

    def rbf_kernel(self, pooled: np.ndarray, sigma: float) -> np.ndarray:
        """exp(−‖pᵢ − pⱼ‖² / (2σ²)) − 1 for the rows of pooled, N × N float32 computed in
        float64 (σ in embedding units; see ``image_drift.NumpyBackend.rbf_kernel``)."""
        torch = self._torch
        p = torch.as_tensor(np.asarray(pooled, dtype=np.float64), device=self.device)
        total = p.shape[0]
        sq = (p * p).sum(dim=1)
        out = torch.empty((total, total), dtype=torch.float32, device=self.device)
        step = max(1, _BLOCK // total)
        with torch.inference_mode():
            for s in range(0, total, step):
                # The numpy backend's expansion, order of operations and upper-triangle blocks.
                d2 = -2.0 * (p[s : s + step] @ p[s:].T) + sq[s : s + step, None] + sq[None, s:]
                d2 *= -1.0 / (2.0 * sigma**2)
                block = torch.expm1(d2).to(torch.float32)
                out[s : s + step, s:] = block
                out[s:, s : s + step] = block.T
        return out.cpu().numpy()

    def quadratic_forms(self, kernel: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """wⱼᵀ K wⱼ for every column of weights (N × C): the product in K's precision, the
        sums in float64 (unitless)."""
        torch = self._torch
        k = torch.as_tensor(kernel, device=self.device)
        w = torch.as_tensor(np.asarray(weights), device=self.device).to(k.dtype)
        # TF32 would keep 10 bits of each kernel value: ask for full float32 products, and
        # leave the caller's setting as it was.
        previous = torch.get_float32_matmul_precision()
        torch.set_float32_matmul_precision("highest")
        try:
            with torch.inference_mode():
                kw = k @ w
                out = (w.double() * kw.double()).sum(dim=0)
        finally:
            torch.set_float32_matmul_precision(previous)
        return out.cpu().numpy()
