"""What counts as a near-duplicate image, and the validated embedding matrices it reads
(pure numpy, deterministic; the definition that the Quality page, its alert metric and the
analytics share).

An image is a near-duplicate when another image of the set is at least ``threshold`` similar
(cosine of CLIP image embeddings) and was made from another prompt, or from the same prompt
with another known seed. The same prompt with the same seed is a deliberate repeat, and the
same prompt where either seed is unknown may be one, so neither counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_THRESHOLD = 0.95
_UNKNOWN = -1  # seed code of an image whose seed was not logged


@dataclass(frozen=True, slots=True)
class NearDuplicates:
    """How many images of a set have a near-duplicate partner, and the closest pairs."""

    n: int  # images examined
    n_duplicates: int  # images with at least one near-duplicate partner
    threshold: float  # cosine at or above which two images are near-duplicates
    examples: tuple[tuple[int, int, float], ...]  # (generation id, generation id, cosine)

    @property
    def share(self) -> float | None:
        """n_duplicates / n (0..1), None for an empty set."""
        return self.n_duplicates / self.n if self.n else None


def image_matrix(name: str, value: object, least: int = 2) -> np.ndarray:
    """``value`` as a float64 (images × width) matrix, or a ValueError that says what to fix."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"{name} must be a numeric array of image embeddings (rows = images); pass the "
            "float vectors of the CLIP image encoder"
        ) from None
    if arr.ndim != 2 or arr.shape[1] < 1:
        raise ValueError(
            f"{name} must be a 2-D array (rows = images, columns = embedding dimensions), got "
            f"shape {arr.shape}; stack one embedding per row, e.g. np.vstack(vectors)"
        )
    if arr.shape[0] < least:
        raise ValueError(
            f"{name} has {arr.shape[0]} images, but this needs at least {least}; widen the "
            f"{name} window or wait for more images"
        )
    bad = np.flatnonzero(~np.isfinite(arr).all(axis=1))
    if bad.size:
        shown = ", ".join(str(int(r)) for r in bad[:5]) + (" …" if bad.size > 5 else "")
        raise ValueError(
            f"{name} has NaN or infinite values in {bad.size} rows (rows {shown}); drop those "
            "rows or re-embed their images"
        )
    return arr


def generation_ids(name: str, value: Sequence[int], rows: int) -> np.ndarray:
    """``value`` as an int64 array of one generation id per embedding row, or a ValueError."""
    arr = np.asarray(value)
    if arr.ndim != 1 or arr.shape[0] != rows:
        raise ValueError(
            f"{name} has {arr.size} entries but its embeddings have {rows} rows; pass one "
            "generation id per embedding row, in the same order"
        )
    if arr.size and arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integer generation ids, got {arr.dtype} values")
    return arr.astype(np.int64)


def find_near_duplicates(
    embeddings: np.ndarray,
    ids: Sequence[int],
    prompts: Sequence[str],
    seeds: Sequence[int | None],
    *,
    threshold: float = DEFAULT_THRESHOLD,
    max_examples: int = 8,
    block: int = 2048,
) -> NearDuplicates:
    """Near-duplicates among images (rows of embeddings, one id, prompt and seed each).

    Two images are near-duplicates when their cosine is >= ``threshold`` (unitless, -1..1) and
    their prompts differ, or their prompts are equal (exact string) and both seeds are known
    and differ; None is an unknown seed. Rows are L2-normalised here, whatever came in.
    Examples: the highest-cosine such pairs, greedily, each image in at most one, at most
    ``max_examples``; ids in row order within a pair.

    Cosines are screened in float32, ``block`` rows at a time against all N rows (about
    5 · N · block bytes), and the columns with a pair that passes are decided on float64
    cosines (at most about 20 · N · block bytes more, when most pairs pass), so the
    threshold holds to float64 round-off.
    """
    e = image_matrix("embeddings", embeddings, least=1)
    n = e.shape[0]
    id_arr = generation_ids("ids", ids, n)
    prompt_codes = _codes("prompts", prompts, n)
    seed_codes = _seed_codes(seeds, n)
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be a cosine in (0, 1], got {threshold!r}; use 0.95")
    if isinstance(max_examples, bool) or int(max_examples) != max_examples or max_examples < 0:
        raise ValueError(f"max_examples must be a count >= 0, got {max_examples!r}; use 8")
    if isinstance(block, bool) or int(block) != block or block < 1:
        raise ValueError(f"block must be a positive number of rows, got {block!r}; use 2048")
    norms = np.linalg.norm(e, axis=1)
    zero = np.flatnonzero(norms == 0)
    if zero.size:
        raise ValueError(
            f"embeddings row {int(zero[0])} is all zeros and has no direction ({zero.size} "
            "such rows); re-embed those images"
        )
    unit = e / norms[:, None]
    unit32 = unit.astype(np.float32)
    # float32 dot products of unit vectors are off by at most about width · eps; screen
    # that much below the threshold, then decide in float64.
    margin = 2.0 * (e.shape[1] + 2) * float(np.finfo(np.float32).eps)
    duplicate = np.zeros(n, dtype=bool)
    per_row = 2 * int(max_examples)  # enough partners per image for the greedy pick (below)
    found: list[np.ndarray] = []
    for start in range(0, n, int(block)):
        rows = np.arange(start, min(n, start + int(block)))
        screen = unit32[rows] @ unit32.T >= threshold - margin
        cols = np.flatnonzero(screen.any(axis=0))
        if cols.size == 0:
            continue
        cos = unit[rows] @ unit[cols].T
        hit = screen[:, cols] & (cos >= threshold)
        # The same prompt is a repeat when the seeds match or either is unknown (this also
        # drops every image's pairing with itself).
        repeat = prompt_codes[rows, None] == prompt_codes[None, cols]
        open_seed = seed_codes[rows, None] == seed_codes[None, cols]
        open_seed |= seed_codes[rows, None] == _UNKNOWN
        open_seed |= seed_codes[None, cols] == _UNKNOWN
        repeat &= open_seed
        hit &= ~repeat
        duplicate[rows] = hit.any(axis=1)
        if per_row:
            found.append(_top_partners(rows, cols, np.where(hit, cos, -np.inf), per_row))
    pairs = np.concatenate(found) if found else np.empty((0, 3))
    return NearDuplicates(
        n=n,
        n_duplicates=int(np.count_nonzero(duplicate)),
        threshold=float(threshold),
        examples=_greedy_pairs(pairs, id_arr, int(max_examples)),
    )


def _top_partners(rows: np.ndarray, cols: np.ndarray, cos: np.ndarray, count: int) -> np.ndarray:
    """(i, j, cosine) rows, i < j, of each row's ``count`` best qualifying partners."""
    if cos.shape[1] > count:
        best = np.argpartition(-cos, count - 1, axis=1)[:, :count]
    else:
        best = np.broadcast_to(np.arange(cos.shape[1]), cos.shape)
    values = np.take_along_axis(cos, best, axis=1)
    keep = np.isfinite(values)
    i = np.broadcast_to(rows[:, None], best.shape)[keep]
    j = cols[best[keep]]
    return np.column_stack([np.minimum(i, j), np.maximum(i, j), values[keep]])


def _greedy_pairs(
    pairs: np.ndarray, ids: np.ndarray, limit: int
) -> tuple[tuple[int, int, float], ...]:
    """Highest cosine first, skipping pairs with an image already shown, at most ``limit``.

    Exact although each image kept only its 2·limit best partners: when pair (a, b) is picked,
    every better partner of a was skipped for an image already used, and fewer than 2·limit
    images are used before the last pick, so b is among a's 2·limit best.
    """
    if limit == 0 or pairs.size == 0:
        return ()
    pairs = np.unique(pairs, axis=0)  # a pair is found from both of its rows
    order = np.lexsort((pairs[:, 1], pairs[:, 0], -pairs[:, 2]))
    used: set[int] = set()
    out: list[tuple[int, int, float]] = []
    for a, b, cos in pairs[order]:
        i, j = int(a), int(b)
        if i in used or j in used:
            continue
        used.update((i, j))
        out.append((int(ids[i]), int(ids[j]), float(cos)))
        if len(out) == limit:
            break
    return tuple(out)


def _codes(name: str, values: Sequence[str], n: int) -> np.ndarray:
    if len(values) != n:
        raise ValueError(
            f"{name} has {len(values)} entries but embeddings has {n} rows; pass one per image, "
            "in the same order"
        )
    index: dict[str, int] = {}
    out = np.empty(n, dtype=np.int64)
    for row, value in enumerate(values):
        if not isinstance(value, str):
            raise ValueError(f"{name}[{row}] must be the prompt text (str), got {value!r}")
        out[row] = index.setdefault(value, len(index))
    return out


def _seed_codes(seeds: Sequence[int | None], n: int) -> np.ndarray:
    if len(seeds) != n:
        raise ValueError(
            f"seeds has {len(seeds)} entries but embeddings has {n} rows; pass one per image "
            "(None where the seed is unknown), in the same order"
        )
    index: dict[int, int] = {}
    out = np.empty(n, dtype=np.int64)
    for row, seed in enumerate(seeds):
        if seed is None:
            out[row] = _UNKNOWN
        elif isinstance(seed, bool) or not isinstance(seed, int | np.integer):
            raise ValueError(f"seeds[{row}] must be an integer seed or None, got {seed!r}")
        else:
            out[row] = index.setdefault(int(seed), len(index))
    return out
