"""``diffwatch drift images``: have the images production makes changed?

The CLIP image embeddings that scoring stores (pgvector) of a current window are compared
with a reference window's, three ways, so that "the traffic changed" and "the model changed"
can be told apart:

- **overall**: every version's images of each window (CMMD, RBF σ = 10, ×1000, with a
  permutation test and a k-NN AUC effect size);
- **per version**: each model version present in both windows against itself (a silent
  update under an unchanged label: a quantised build, a scheduler swap, a merged LoRA);
- **same prompts**: a version of the reference window against a different version of the
  current window, on images of the very same prompts, paired (a paired permutation test),
  so a new version is compared with the old one where the traffic cannot differ.

"What moved": k-means clusters of the pooled embeddings whose share changed, with example
images and their prompts. The run is stored in ``drift_runs`` (kind ``images``): the Drift
page shows it and the alert metric ``image_drift`` reads it.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import psycopg

from diffwatch.analytics import image_drift as stats
from diffwatch.db.queries import drift as q
from diffwatch.db.queries import embedding_reads as reads
from diffwatch.db.queries import embeddings as emb
from diffwatch.drift.windows import Window, ending_after, windows
from diffwatch.model.filters import Filters

log = logging.getLogger(__name__)

MIN_IMAGES = 20  # per side of any comparison
DEFAULT_REFERENCE = "7d"


class NotEnoughImages(ValueError):
    """A window holds too few stored image embeddings for a test."""


@dataclass(frozen=True)
class ImageDriftOptions:
    """What ``drift images`` compares (see its --help). Windows: a duration ending at
    ``until`` (default: the newest generation) or START..END; the reference duration ends
    where the current window starts. ``max_images``: an even sample cap per window."""

    current: str = "24h"
    reference: str | None = None  # None: DEFAULT_REFERENCE
    model: str | None = None
    versions: tuple[str, ...] = ()
    until: datetime | None = None
    scorer_version: str | None = None  # None: the CLIP version with the most embeddings
    max_images: int = 5000
    permutations: int = 200
    alpha: float = 0.05
    clusters: int | None = None
    examples: int = 4
    min_pairs: int = MIN_IMAGES
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_images < MIN_IMAGES:
            raise ValueError(f"--max-images must be at least {MIN_IMAGES}, got {self.max_images}")
        if self.permutations < 50:
            raise ValueError(f"--permutations must be at least 50, got {self.permutations}")
        if not 0 < self.alpha < 1:
            raise ValueError(f"--alpha must be between 0 and 1, got {self.alpha}")
        if self.min_pairs < 2:
            raise ValueError(f"--min-pairs must be at least 2, got {self.min_pairs}")
        if not 0 <= self.examples <= 20:
            raise ValueError(f"--examples must be 0 to 20, got {self.examples}")
        # The window forms are checked now, before anything is read or stored.
        windows(self.current, self.reference or DEFAULT_REFERENCE, datetime.now(UTC))


def _versions(sample: reads.WindowSample) -> dict[str, np.ndarray]:
    rows: dict[str, list[int]] = defaultdict(list)
    for i, v in enumerate(sample.model_versions):
        rows[v].append(i)
    return {v: np.array(ix) for v, ix in sorted(rows.items())}


def _pairs(
    ref: reads.WindowSample, a: np.ndarray, cur: reads.WindowSample, b: np.ndarray, cap: int
) -> tuple[np.ndarray, np.ndarray]:
    """Row pairs (reference rows of version A, current rows of version B) with the same
    prompt: the k-th image of a prompt under A with the k-th under B."""
    by_prompt: dict[str, list[int]] = defaultdict(list)
    for i in b:
        by_prompt[cur.prompts[i]].append(int(i))
    used: dict[str, int] = defaultdict(int)
    left, right = [], []
    for i in a:
        p = ref.prompts[i]
        k = used[p]
        if k < len(by_prompt.get(p, ())):
            left.append(int(i))
            right.append(by_prompt[p][k])
            used[p] = k + 1
            if len(left) >= cap:
                break
    return np.array(left, dtype=int), np.array(right, dtype=int)


def analyse(
    ref: reads.WindowSample,
    cur: reads.WindowSample,
    opts: ImageDriftOptions,
    backend: stats.KernelBackend | None = None,
) -> dict[str, Any]:
    """The three comparisons, what moved, and the attribution (JSON-ready; example ids
    only, the caller adds what they show)."""
    common = {"permutations": opts.permutations, "alpha": opts.alpha, "seed": opts.seed}
    overall = stats.image_drift_test(
        ref.embeddings, cur.embeddings, max_samples=opts.max_images, backend=backend, **common
    )
    ref_v, cur_v = _versions(ref), _versions(cur)
    per_version = []
    for v in sorted(set(ref_v) & set(cur_v)):
        if min(len(ref_v[v]), len(cur_v[v])) >= MIN_IMAGES:
            r = stats.image_drift_test(
                ref.embeddings[ref_v[v]], cur.embeddings[cur_v[v]], max_samples=opts.max_images,
                backend=backend, scope=f"version {v}", **common,
            )  # fmt: skip
            per_version.append(r)
    same: list[tuple[stats.ImageDriftResult, dict[str, Any]]] = []
    for a in ref_v:
        for b in cur_v:
            if a == b:
                continue
            left, right = _pairs(ref, ref_v[a], cur, cur_v[b], opts.max_images)
            if len(left) < opts.min_pairs:
                continue
            r = stats.paired_image_drift_test(
                ref.embeddings[left], cur.embeddings[right], scope=f"same prompts {a} → {b}",
                **common,
            )  # fmt: skip
            same.append((r, {"from_version": a, "to_version": b, "pairs": len(left)}))
    moved = stats.clusters_moved(
        ref.embeddings, cur.embeddings, ref.ids, cur.ids, k=opts.clusters, seed=opts.seed,
        examples=opts.examples, max_samples=opts.max_images,
    )  # fmt: skip
    return {
        "attribution": stats.attribute(overall, per_version, [r for r, _ in same]),
        "overall": overall.to_dict(),
        "per_version": [r.to_dict() for r in per_version],
        "same_prompts": [r.to_dict() | extra for r, extra in same],
        "moved": [m.to_dict() for m in moved],
    }


def _check(sample: reads.WindowSample, what: str) -> None:
    if len(sample) < MIN_IMAGES:
        raise NotEnoughImages(
            f"{what} has {len(sample)} images with stored embeddings; image drift needs at "
            f"least {MIN_IMAGES} a side; fix: widen the window (--current/--reference), check "
            "--model/--version, or score the window's images with CLIP (`diffwatch score`)"
        )


def _space(conn: psycopg.Connection, wanted: str | None) -> emb.Space:
    st = emb.support(conn)
    if not st.enabled:
        raise NotEnoughImages(f"drift images reads stored image embeddings, but {st.describe()}")
    spaces = emb.spaces(conn)
    if wanted is not None:
        for s in spaces:
            if s.scorer_version == wanted:
                return s
        raise NotEnoughImages(
            f"--clip-version {wanted!r}: no embeddings of that CLIP version are stored; "
            f"stored: {', '.join(s.scorer_version for s in spaces) or 'none'}"
        )
    if not spaces or spaces[0].images == 0:
        raise NotEnoughImages(
            "no image embeddings are stored yet; fix: score images with CLIP on this "
            "database (`diffwatch score`), which keeps them where pgvector is installed"
        )
    return spaces[0]


def _examples(conn: psycopg.Connection, moved: list[dict[str, Any]]) -> None:
    """Replace each cluster's example ids with what a page shows of them."""
    ids = [i for m in moved for i in m["example_ids"]]
    found = reads.shown(conn, ids)
    for m in moved:
        m["examples"] = [
            {
                "generation_id": i,
                "model_version": s.model_version,
                "prompt": s.prompt,
                "image_uri": s.image_uri,
                "nsfw_flagged": s.nsfw_flagged,
            }
            for i in m.pop("example_ids")
            if (s := found.get(i)) is not None
        ]


def run_image_drift(
    conninfo: str,
    opts: ImageDriftOptions,
    *,
    backend: stats.KernelBackend | None = None,
    worker: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run one image-drift check and store it; return the stored summary with ``run_id``.

    A check that cannot run (no pgvector, too few images, a bad window) is stored as a
    ``failed`` run with its reason, then raised.
    """
    say = progress or (lambda _m: None)
    with psycopg.connect(conninfo) as conn:
        conn.autocommit = True
        run_id = q.start_run(
            conn, "images", model=opts.model, threshold=opts.alpha, worker=worker,
            embedder=opts.scorer_version,
        )  # fmt: skip
        fields: dict[str, Any] = {}
        try:
            sp = _space(conn, opts.scorer_version)
            fields["embedder"] = sp.scorer_version
            emb.register(conn)
            cur_w, ref_w = _windows(conn, opts)
            fields.update(
                current_start=cur_w.start, current_end=cur_w.end,
                reference_start=ref_w.start, reference_end=ref_w.end,
            )  # fmt: skip
            models = (opts.model,) if opts.model else ()
            say(f"reading image embeddings ({sp.scorer_version})")
            cur = reads.window(
                conn, sp, Filters(cur_w.start, cur_w.end, models, opts.versions),
                limit=opts.max_images,
            )  # fmt: skip
            _check(cur, f"the current window {cur_w.label()}")
            ref = reads.window(
                conn, sp, Filters(ref_w.start, ref_w.end, models, opts.versions),
                limit=opts.max_images,
            )  # fmt: skip
            _check(ref, f"the reference window {ref_w.label()}")
            say(
                f"comparing {len(ref)} reference images [{describe_sample(ref.model_versions)}]"
                f" with {len(cur)} current [{describe_sample(cur.model_versions)}]"
            )
            result = analyse(ref, cur, opts, backend)
            _examples(conn, result["moved"])
        except Exception as exc:
            q.finish_run(conn, run_id, "failed", error=str(exc), **fields)
            raise
        overall = result["overall"]
        result["windows"] = {"reference": ref_w.label(), "current": cur_w.label()}
        result["embedder"] = sp.scorer_version
        result["options"] = _options(opts, backend)
        tests = [overall, *result["per_version"], *result["same_prompts"]]
        # Drifted as the attribution reads it (each family of comparisons Bonferroni-held
        # at alpha), so one of ten versions passing alpha by chance does not flag the run.
        drifted = result["attribution"] != stats.NO_CHANGE
        # The row's effect size (what alert rules read) is the largest of the comparisons:
        # a new version that drifted on the same prompts counts even when the window's mix
        # hides it. Its statistic and p-value stay the overall test's.
        q.finish_run(
            conn, run_id, "ok", drifted=drifted, statistic=overall["cmmd"],
            p_value=overall["p_value"], effect_size=max(t["effect_size"] for t in tests),
            n_reference=len(ref), n_current=len(cur), summary=result, **fields,
        )  # fmt: skip
    return {"run_id": run_id, "drifted": drifted, **result}


def _windows(conn: psycopg.Connection, opts: ImageDriftOptions) -> tuple[Window, Window]:
    anchor = opts.until or q.newest_generation_ts(conn, opts.model)
    if anchor is None:
        raise NotEnoughImages(
            "no generations are logged"
            + (f" for model {opts.model!r}" if opts.model else "")
            + "; fix: collect logs first (`diffwatch collect logs`)"
        )
    cur, ref = windows(opts.current, opts.reference or DEFAULT_REFERENCE, ending_after(anchor))
    assert ref is not None
    if ref.start < cur.end and cur.start < ref.end:
        raise ValueError(
            f"the reference window {ref.label()} overlaps the current window {cur.label()}; "
            "fix: give windows that do not overlap"
        )
    return cur, ref


def _options(opts: ImageDriftOptions, backend: Any) -> dict[str, Any]:
    return {
        "max_images": opts.max_images,
        "permutations": opts.permutations,
        "alpha": opts.alpha,
        "clusters": opts.clusters,
        "min_pairs": opts.min_pairs,
        "versions": list(opts.versions),
        "seed": opts.seed,
        "backend": repr(backend) if backend is not None else "numpy",
    }


def backend_for(device: str) -> stats.KernelBackend | None:
    """The kernel backend of a device: None (numpy) on the CPU, torch on a GPU ('auto':
    a GPU when torch sees one)."""
    if device == "cpu":
        return None
    from diffwatch.scoring.scorers import resolve_device

    resolved = resolve_device(device)
    if resolved == "cpu":
        return None
    from diffwatch.drift.image_backend import TorchBackend

    return TorchBackend(resolved)


def describe_sample(values: Sequence[str]) -> str:
    """'v1 (120), v2 (80)': versions and their image counts."""
    counts: dict[str, int] = defaultdict(int)
    for v in values:
        counts[v] += 1
    return ", ".join(f"{v} ({n})" for v, n in sorted(counts.items()))
