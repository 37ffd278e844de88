"""What a gate evaluated, so that it can be reproduced and compared with what later
serves: a hash of each side's weights, its pipeline and scheduler configs, the library
versions (diffusers, torch, CUDA) and the GPU and driver."""

from __future__ import annotations

import hashlib
import json
import platform
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from diffwatch.drift.diffusion_load import LoadedPipeline

_WEIGHTS = (".safetensors", ".bin", ".ckpt", ".pt", ".pth", ".onnx", ".gguf")
_CHUNK = 1 << 22  # bytes read at a time when hashing (4 MiB)


def weights_hash(root: str | Path) -> str | None:
    """sha256 over every weight file under ``root`` (relative path and content, sorted);
    None when ``root`` is not a local directory (a hub id: see the cache's revision)."""
    base = Path(root)
    if not base.is_dir():
        return None
    h = hashlib.sha256()
    for path in sorted(p for p in base.rglob("*") if p.is_file() and p.suffix in _WEIGHTS):
        h.update(str(path.relative_to(base)).encode() + b"\0")
        with path.open("rb") as f:
            while block := f.read(_CHUNK):
                h.update(block)
    return h.hexdigest()


def _configs(root: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("model_index.json", "scheduler/scheduler_config.json"):
        p = root / name
        if p.is_file():
            try:
                out[name] = json.loads(p.read_text(encoding="utf-8"))
            except (ValueError, UnicodeDecodeError):
                out[name] = "unreadable"
    return out


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def environment(device: str) -> dict[str, Any]:
    """Library versions, Python, and the GPU with its driver (when ``device`` is CUDA)."""
    import torch

    env: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        **{d: _version(d) for d in ("diffusers", "transformers", "open-clip-torch", "diffwatch")},
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        idx = torch.device(device).index or 0
        env["gpu"] = torch.cuda.get_device_name(idx)
        env["driver"] = _driver()
    else:
        env["gpu"] = None
    return env


def _driver() -> str | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            v = pynvml.nvmlSystemGetDriverVersion()
        finally:
            pynvml.nvmlShutdown()
        return v.decode() if isinstance(v, bytes) else str(v)
    except Exception:  # no NVML here: the driver stays unknown, the run goes on
        return None


def pipeline_identity(loaded: LoadedPipeline, overrides: dict[str, Any]) -> dict[str, Any]:
    """A loaded side's identity: source, weights hash, configs, class, precision, overrides."""
    root = Path(loaded.source)
    return {
        "source": loaded.source,
        "weights_sha256": weights_hash(root),
        "configs": _configs(root) if root.is_dir() else {},
        "pipeline": loaded.describe(),
        "scheduler": loaded.base_scheduler_class,
        "precision": loaded.precision,
        "overrides": overrides,
    }


def manifest_identity(path: str | Path) -> dict[str, Any]:
    """A manifest side's identity: its path and the sha256 of its content."""
    p = Path(path)
    return {"manifest": str(p), "manifest_sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
