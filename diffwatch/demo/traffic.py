"""The simulated requests of one minute (pure and deterministic: seed and minute in, requests out).

Each minute draws from its own random stream, keyed by the seed and the minute since the
epoch, so the same minute always gives the same requests, whatever window it is part of.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache

import numpy as np

from diffwatch.demo.draw import image_size
from diffwatch.demo.fleet import Fleet, GpuSlot
from diffwatch.demo.scenes import (
    STYLES,
    Scene,
    mutate,
    prompt_of,
    sample_scene,
    sample_trend_scene,
)

MODEL = "sd15-prod"
DEADLINE_MS = 30_000.0  # the service gives up on a request after this long (ms)


@dataclass(frozen=True, slots=True)
class Version:
    """A model version, the deployment that serves it, and how it behaves."""

    version: str
    deployment: str
    share: float  # fraction of traffic
    slowdown: float  # inference time relative to stable
    off_prompt: float  # fraction of images that do not show what the prompt asked


STABLE = Version("v1.4", "stable", 0.9, 1.0, 0.01)
CANARY = Version("v1.5-rc1", "canary", 0.1, 1.4, 0.25)
VERSIONS = (STABLE, CANARY)

SAMPLERS = {  # name: (min steps, max steps, weight)
    "DPM++ 2M Karras": (20, 30, 0.4),
    "Euler a": (20, 40, 0.25),
    "DDIM": (30, 50, 0.1),
    "UniPC": (15, 25, 0.15),
    "DPM++ SDE Karras": (15, 25, 0.1),
}
SIZES = ((512, 512), (768, 768), (512, 768), (768, 512), (1024, 1024))
SIZE_P = (0.55, 0.2, 0.12, 0.08, 0.05)
BATCHES = (1, 2, 4)
BATCH_P = (0.55, 0.2, 0.25)
CFG = (5.0, 6.0, 7.0, 7.0, 7.5, 7.5, 8.0, 9.0, 12.0)
NEGATIVE = (
    None,
    "",
    "blurry, low quality",
    "text, watermark, signature",
    "lowres, jpeg artifacts, deformed",
    "photo, realistic, 3d render",
)
CLIENTS = ("web", "web", "web", "ios", "android", "api")
REGIONS = ("us-east-1", "us-east-1", "eu-west-1", "ap-southeast-1")
DEFECTS = ("truncated", "naive_timestamp", "bad_status")
DEFECT_RATE = 0.002  # fraction of lines the service writes broken


@dataclass(frozen=True, slots=True)
class SimRequest:
    """One simulated request. Times in ms; ``drawn`` is the scene the image shows."""

    request_id: str
    ts: datetime
    version: Version
    slot: GpuSlot
    scene: Scene
    drawn: Scene
    prompt: str
    negative_prompt: str | None
    sampler: str
    steps: int
    cfg_scale: float
    seed: int
    width: int
    height: int
    batch_size: int
    queue_ms: float
    inference_ms: float | None
    total_ms: float
    status: str
    error: str | None
    user_id: str
    client: str
    region: str
    activation_mib: float  # peak GPU memory of the request beyond the weights (MiB)
    defect: str | None = None  # how its log line is broken, if it is

    @property
    def has_image(self) -> bool:
        """Whether the service stored an image for this request."""
        return self.status == "ok" and self.defect is None

    @property
    def image_size(self) -> tuple[int, int]:
        """Size (px) of the stored image: the requested size scaled down."""
        return image_size(self.width, self.height)


@dataclass(frozen=True, slots=True)
class Trend:
    """A topic whose share of prompts climbs linearly from 0 to ``share`` over the
    ``ramp_min`` minutes before minute ``peak`` (minutes since the epoch), then stays."""

    peak: int
    ramp_min: int = 360
    share: float = 0.5

    def share_at(self, minute: int) -> float:
        """The topic's share of the prompts of ``minute``."""
        return self.share * min(1.0, max(0.0, 1 - (self.peak - minute) / self.ramp_min))


@dataclass(frozen=True, slots=True)
class Minute:
    """One minute of traffic and the GPU time it used per GPU (ms, MiB)."""

    start: datetime
    requests: tuple[SimRequest, ...]
    busy_ms: dict[GpuSlot, float] = field(default_factory=dict)
    peak_mib: dict[GpuSlot, float] = field(default_factory=dict)


def traffic_multiplier(ts: datetime) -> float:
    """Daily curve around 1.0: quietest at 03:00 UTC, busiest at 15:00 UTC."""
    hour = ts.hour + ts.minute / 60
    return 1 + 0.55 * math.sin(2 * math.pi * (hour - 9) / 24)


@lru_cache(maxsize=64)
def queue_spike(seed: int, hour: int) -> tuple[int, int]:
    """Minutes [start, end) of ``hour`` (hours since the epoch) in which the queue backs up.

    Empty (0, 0) in four hours of five; a spike lasts 3 to 8 minutes.
    """
    rng = np.random.default_rng([seed, hour, 1])
    if rng.random() < 0.2:
        start = int(rng.integers(0, 55))
        return start, start + int(rng.integers(3, 9))
    return 0, 0


def _queue_ms(rng: np.random.Generator, mult: float, spiking: bool) -> float:
    q = float(rng.lognormal(math.log(18 * (1 + 2 * max(0.0, mult - 0.5) ** 3)), 0.7))
    if spiking:
        q += float(rng.lognormal(math.log(4000), 0.7))
    elif rng.random() < 0.005:
        q += float(rng.uniform(1500, 9000))
    return q


def _gpu_ms(slot: GpuSlot, v: Version, steps: int, w: int, h: int, b: int) -> float:
    """Expected GPU wall time of one request's batch (ms), before noise."""
    spec = slot.spec
    px = w * h / (512 * 512)
    per_image = spec.fixed_ms * px + steps * spec.ms_per_step * px**1.15
    return per_image * (1 + 0.78 * (b - 1)) * v.slowdown


def _oom_p(slot: GpuSlot, w: int, h: int, b: int) -> float:
    load = w * h * b
    if slot.spec.key == "a10g":
        if load >= 1024 * 1024 * 2:
            return 0.3
        if load >= 768 * 768 * 4:
            return 0.15
    return 0.001


def _oom_message(rng: np.random.Generator, slot: GpuSlot) -> str:
    total = slot.spec.mem_total_mib / 1024
    alloc = total * float(rng.uniform(0.82, 0.93))
    want = float(rng.uniform(0.5, 3.0))
    return (
        f"CUDA out of memory. Tried to allocate {want:.2f} GiB (GPU {slot.index}; "
        f"{total:.2f} GiB total capacity; {alloc:.2f} GiB already allocated; "
        f"{max(0.01, total - alloc - 0.4):.2f} GiB free)"
    )


def _long_prompt(rng: np.random.Generator, prompt: str) -> str:
    words = [s.strip(", ") for s in STYLES if s]
    extra = ", ".join(words[int(i)] for i in rng.integers(0, len(words), size=18))
    return f"{prompt}, {extra}"


def _pick_slot(rng: np.random.Generator, fleet: Fleet, deployment: str) -> GpuSlot:
    keys = sorted(fleet.type_share)
    key = keys[int(rng.choice(len(keys), p=[fleet.type_share[k] for k in keys]))]
    pool = fleet.pool(deployment, key)
    return pool[int(rng.integers(len(pool)))]


def _request(
    rng: np.random.Generator,
    ts: datetime,
    fleet: Fleet,
    mult: float,
    spiking: bool,
    trending: Scene | None = None,
) -> SimRequest:
    v = CANARY if rng.random() < CANARY.share else STABLE
    slot = _pick_slot(rng, fleet, v.deployment)
    request_id = str(uuid.UUID(bytes=rng.bytes(16), version=4))
    scene = sample_scene(rng)
    # A trending scene replaces the drawn one without changing what else the stream draws,
    # so request ids and which images come out garbled do not depend on the trend.
    scene = trending or scene
    drawn = mutate(scene, rng) if rng.random() < v.off_prompt else scene
    prompt = prompt_of(scene)
    names = list(SAMPLERS)
    sampler = names[int(rng.choice(len(names), p=[SAMPLERS[n][2] for n in names]))]
    lo, hi, _ = SAMPLERS[sampler]
    steps = int(rng.integers(lo, hi + 1)) // 5 * 5 or lo
    w, h = SIZES[int(rng.choice(len(SIZES), p=SIZE_P))]
    b = BATCHES[int(rng.choice(len(BATCHES), p=BATCH_P))]
    queue = _queue_ms(rng, mult, spiking)
    gpu = _gpu_ms(slot, v, steps, w, h, b) * float(rng.lognormal(0, 0.15))
    if rng.random() < 0.02:
        gpu *= float(rng.uniform(1.6, 4.0))  # stragglers: noisy neighbours, recompiles
    status, error, inference = "ok", None, gpu
    roll = float(rng.random())
    if roll < 0.003:
        prompt = _long_prompt(rng, prompt)
        n_tokens = len(prompt.replace(",", " ,").split()) + 2
        status, inference = "error", None
        error = f"invalid prompt: {n_tokens} tokens, the text encoder takes at most 77"
    elif roll < 0.003 + _oom_p(slot, w, h, b):
        status, inference = "error", gpu * float(rng.uniform(0.05, 0.6))
        error = _oom_message(rng, slot)
    elif rng.random() < 0.004:
        status, error = "error", f"NSFW filter: the safety checker blocked {b} of {b} images"
    elif queue + gpu > DEADLINE_MS or rng.random() < 0.0015:
        status, inference = "error", max(0.0, DEADLINE_MS - queue)
        error = f"timeout: no result within the {DEADLINE_MS / 1000:.0f} s deadline"
    overhead = float(rng.lognormal(math.log(35), 0.3))
    negative = NEGATIVE[int(rng.integers(len(NEGATIVE)))]
    return SimRequest(
        request_id=request_id,
        ts=ts,
        version=v,
        slot=slot,
        scene=scene,
        drawn=drawn,
        prompt=prompt,
        negative_prompt=negative,
        sampler=sampler,
        steps=steps,
        cfg_scale=CFG[int(rng.integers(len(CFG)))],
        seed=int(rng.integers(0, 2**32)),
        width=w,
        height=h,
        batch_size=b,
        queue_ms=round(queue, 1),
        inference_ms=None if inference is None else round(inference, 1),
        total_ms=round(queue + (inference or 0.0) + overhead, 1),
        status=status,
        error=error,
        user_id=f"u-{int(rng.zipf(1.4)) % 1500:04d}",
        client=CLIENTS[int(rng.integers(len(CLIENTS)))],
        region=REGIONS[int(rng.integers(len(REGIONS)))],
        activation_mib=1400 * (w * h / (512 * 512)) * b**0.9,
        defect=DEFECTS[int(rng.integers(len(DEFECTS)))] if rng.random() < DEFECT_RATE else None,
    )


def simulate_minute(
    seed: int, minute: int, rate_per_min: float, fleet: Fleet, trend: Trend | None = None
) -> Minute:
    """The requests that arrive in ``minute`` (minutes since the epoch, UTC), in time order.

    With a ``trend``, that share of the prompts asks for the trending topic instead; the
    trend draws from its own stream, so everything else stays as it is without one.
    """
    start = datetime.fromtimestamp(minute * 60, UTC)
    rng = np.random.default_rng([seed, minute])
    topic_rng = np.random.default_rng([seed, minute, 3])
    topic_share = trend.share_at(minute) if trend else 0.0
    mult = traffic_multiplier(start)
    s0, s1 = queue_spike(seed, minute // 60)
    spiking = s0 <= minute % 60 < s1
    n = int(rng.poisson(rate_per_min * mult))
    offsets_ms = np.sort(rng.integers(0, 60_000, size=n))
    requests = []
    busy: dict[GpuSlot, float] = {}
    peak: dict[GpuSlot, float] = {}
    for off in offsets_ms:
        ts = datetime.fromtimestamp(minute * 60 + int(off) / 1000, UTC)
        trending = topic_rng.random() < topic_share
        r = _request(
            rng, ts, fleet, mult, spiking, sample_trend_scene(topic_rng) if trending else None
        )
        requests.append(r)
        if r.inference_ms:
            busy[r.slot] = busy.get(r.slot, 0.0) + r.inference_ms
            peak[r.slot] = max(peak.get(r.slot, 0.0), r.activation_mib)
    return Minute(start, tuple(requests), busy, peak)
