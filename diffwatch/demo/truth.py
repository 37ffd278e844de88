"""What the demo's simulated service really drew: whether an image shows what its prompt asked.

The simulation is deterministic (seed, rate and minute in, requests out), so the truth of a
stored generation is recomputed from its minute instead of being logged: the logs stay what a
real service would write, and only the simulated raters, who play people looking at the
image, are told what the image shows.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache

from diffwatch.demo.fleet import build_fleet
from diffwatch.demo.service import minute_of
from diffwatch.demo.traffic import simulate_minute


class SceneTruth:
    """Looks up whether a demo generation's image matches its prompt (None: not the demo's)."""

    def __init__(self, seed: int, rate_per_min: float) -> None:
        self.seed, self.rate = seed, rate_per_min
        self.fleet = build_fleet(rate_per_min)
        self._minute = lru_cache(maxsize=256)(self._simulate)

    def _simulate(self, minute: int) -> dict[str, bool]:
        m = simulate_minute(self.seed, minute, self.rate, self.fleet)
        return {r.request_id: r.drawn == r.scene for r in m.requests}

    def on_prompt(self, request_id: str, ts: datetime) -> bool | None:
        """True when the image shows the prompt's scene, False when one detail is garbled,
        None when this seed and rate did not make the request (another run's data)."""
        return self._minute(minute_of(ts)).get(request_id)
