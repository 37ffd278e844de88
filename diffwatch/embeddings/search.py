"""Image search over the stored CLIP image embeddings: text → images, image → similar images.

Both rank by cosine (pgvector's HNSW index, ``embedding_reads.search``) inside the dashboard's
time range and filters. Text is encoded by a CLIP loaded through scoring's own loader, so a
query lands in the same space as the images only when it is the very CLIP that scored them:
its scorer version (``clip_label``) must name a stored space. Loading it is the only place
torch comes in, lazily, on the first text search.

Search text is untrusted (it arrives in a URL): ``clean_query`` bounds its length and turns
control characters into spaces before it reaches the tokenizer; nothing here renders it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import psycopg

from diffwatch.db.queries import embedding_reads as reads
from diffwatch.db.queries import embeddings as emb
from diffwatch.db.queries.embedding_reads import SearchHit
from diffwatch.db.queries.embeddings import EmbeddingsUnavailable, Space
from diffwatch.model.filters import Filters

if TYPE_CHECKING:
    from diffwatch.scoring.clip.config import ClipOptions
    from diffwatch.settings import Settings

MAX_QUERY_CHARS = 300  # longer search text is refused: no description of an image is longer
DEFAULT_K = 24  # results a search shows (a 6 × 4 gallery)
MAX_K = 200
SETTINGS_HINT = (
    "set DIFFWATCH_SEARCH_CLIP_MODEL and DIFFWATCH_SEARCH_CLIP_PRETRAINED (an open_clip tag) "
    "or DIFFWATCH_SEARCH_CLIP_CHECKPOINT (a weights file) to the CLIP the scoring worker "
    "runs, and restart the dashboard (docs/dashboard.md)"
)
_SPACES = re.compile(r"\s+")

__all__ = [
    "DEFAULT_K",
    "MAX_QUERY_CHARS",
    "EmbeddingsUnavailable",
    "SearchError",
    "SearchHit",
    "SearchNotConfigured",
    "TextEncoder",
    "clean_query",
    "search_clip",
    "search_similar",
    "search_text",
    "setting_hint",
    "similar_images",
]


class SearchError(ValueError):
    """A search that cannot run; the message names the input, the problem and the fix."""


class SearchNotConfigured(SearchError):
    """No CLIP is configured (or loadable) to encode search text."""


def clean_query(text: str) -> str:
    """Search text made safe to encode: control and format characters (NUL, escapes,
    bidirectional overrides, zero-width joiners) become spaces, whitespace runs one space.

    Raises SearchError when nothing is left or it is longer than ``MAX_QUERY_CHARS``.
    """
    if not isinstance(text, str):
        raise SearchError(f"search text must be text, got {type(text).__name__}")
    if len(text) > MAX_QUERY_CHARS:
        raise SearchError(
            f"search text has {len(text)} characters; at most {MAX_QUERY_CHARS} are "
            "searched: describe the images in fewer words"
        )
    kept = "".join(" " if unicodedata.category(ch) in ("Cc", "Cf") else ch for ch in text)
    cleaned = _SPACES.sub(" ", kept).strip()
    if not cleaned:
        raise SearchError(
            "search text is empty: describe what the images show, e.g. 'a blurry hand'"
        )
    return cleaned


def search_clip(settings: Settings) -> ClipOptions | None:
    """The CLIP that encodes search text, from the DIFFWATCH_SEARCH_CLIP_* settings; None
    when none is set. Raises SearchNotConfigured when the settings are incomplete."""
    from diffwatch.scoring.clip.config import ClipOptions

    s = settings
    if not any((s.search_clip_model, s.search_clip_checkpoint, s.search_clip_pretrained)):
        return None
    if not s.search_clip_model:
        raise SearchNotConfigured(
            "DIFFWATCH_SEARCH_CLIP_MODEL is not set: name the open_clip architecture of the "
            "search CLIP (e.g. ViT-B-32), as the worker's --clip-model"
        )
    if not (s.search_clip_checkpoint or s.search_clip_pretrained):
        raise SearchNotConfigured(
            f"DIFFWATCH_SEARCH_CLIP_MODEL is {s.search_clip_model!r} but no weights are set: "
            "set DIFFWATCH_SEARCH_CLIP_PRETRAINED (an open_clip tag) or "
            "DIFFWATCH_SEARCH_CLIP_CHECKPOINT (a weights file), as the worker's --clip-*"
        )
    return ClipOptions(
        model=s.search_clip_model,
        pretrained=s.search_clip_pretrained,
        checkpoint=s.search_clip_checkpoint,
        model_config=s.search_clip_model_config,
    )


def setting_hint(scorer_version: str) -> str:
    """The DIFFWATCH_SEARCH_CLIP_* settings that load the CLIP of a scorer version
    (``<model>/<pretrained tag>`` or ``<model>/file-<sha256 prefix>``)."""
    model, _, weights = scorer_version.partition("/")
    if weights.startswith("file-"):
        return (
            f"DIFFWATCH_SEARCH_CLIP_MODEL={model} DIFFWATCH_SEARCH_CLIP_CHECKPOINT=<the weights "
            f"file whose sha256 begins {weights[5:]}>"
        )
    return f"DIFFWATCH_SEARCH_CLIP_MODEL={model} DIFFWATCH_SEARCH_CLIP_PRETRAINED={weights}"


class TextEncoder:
    """Turns search text into a CLIP text embedding in the space of ``version``'s images."""

    def __init__(
        self, embed: Callable[[Sequence[str]], np.ndarray], version: str, dims: int
    ) -> None:
        self._embed = embed
        self.version = version  # the scorer version (clip_label): model and weights
        self.dims = dims

    @classmethod
    def load(cls, clip: ClipOptions, device: str = "cpu") -> TextEncoder:
        """Load the CLIP of ``clip`` on ``device`` through scoring's loader (torch loads
        here). Raises SearchNotConfigured, saying why, when it cannot be loaded."""
        from diffwatch.embeddings.encoder import load_clip_text

        embed, version, dims = load_clip_text(clip, device, SearchNotConfigured)
        return cls(embed, version, dims)

    def encode(self, text: str) -> np.ndarray:
        """The L2-normalised text embedding of ``text`` (float32, ``dims`` wide)."""
        vec = np.asarray(self._embed([clean_query(text)]), dtype=np.float32).reshape(-1)
        norm = float(np.linalg.norm(vec))
        if vec.shape[0] != self.dims or not np.isfinite(vec).all() or norm == 0.0:
            raise SearchError(f"the search CLIP {self.version} gave no usable embedding")
        return vec / norm


def _ready(conn: psycopg.Connection) -> None:
    """Raise EmbeddingsUnavailable (how to enable them) unless embeddings can be read."""
    st = emb.support(conn)
    if not st.enabled:
        raise EmbeddingsUnavailable(st.describe())
    emb.register(conn)


def _check_k(k: int) -> None:
    if not 1 <= k <= MAX_K:
        raise SearchError(f"results per search: 1 to {MAX_K}, got {k}")


def search_text(
    conn: psycopg.Connection,
    encoder: TextEncoder,
    f: Filters,
    query: str,
    k: int = DEFAULT_K,
) -> list[SearchHit]:
    """The ``k`` images in the range and filters nearest the text ``query`` (cosine of
    CLIP embeddings, -1..1), nearest first.

    Raises SearchError for bad text, or when no image was embedded by the encoder's CLIP
    (the message lists the CLIPs that were); EmbeddingsUnavailable without pgvector.
    """
    text = clean_query(query)
    _check_k(k)
    _ready(conn)
    sp = emb.space(conn, encoder.version)
    if sp is None:
        stored = emb.spaces(conn)
        if not stored:
            raise SearchError(
                "no image embeddings are stored yet: the scoring worker stores them when it "
                "scores images with CLIP (`diffwatch score --scorers clip`)"
            )
        names = ", ".join(s.scorer_version for s in stored)
        raise SearchError(
            f"images scored by CLIP {names} are searchable; this encoder is "
            f"{encoder.version}, whose text embeddings would not match them: set "
            f"{setting_hint(stored[0].scorer_version)} for the dashboard"
        )
    if sp.dims != encoder.dims:
        raise SearchError(
            f"the search CLIP {encoder.version} gives {encoder.dims}-wide embeddings but its "
            f"stored images are {sp.dims}-wide: the weights differ from the scorer's"
        )
    return reads.search(conn, sp, encoder.encode(text), f, k=k)


def search_similar(
    conn: psycopg.Connection,
    sp: Space,
    generation_id: int,
    f: Filters,
    k: int = DEFAULT_K,
) -> list[SearchHit]:
    """The ``k`` images in the range and filters nearest generation ``generation_id``'s
    image in space ``sp`` (cosine, -1..1), nearest first, the image itself left out.

    Raises SearchError when the generation does not exist or has no embedding in ``sp``.
    """
    _check_k(k)
    _ready(conn)
    if generation_id not in reads.shown(conn, [generation_id]):
        raise SearchError(f"generation {generation_id} does not exist (deleted, or a bad link)")
    vec = reads.embedding_of(conn, sp, generation_id)
    if vec is None:
        raise SearchError(
            f"generation {generation_id} has no image embedding by CLIP {sp.scorer_version}: "
            "it has not been scored with that CLIP yet (`diffwatch score --scorers clip`)"
        )
    return reads.search(conn, sp, vec, f, k=k, exclude=generation_id)


def similar_images(
    conn: psycopg.Connection,
    generation_id: int,
    f: Filters,
    k: int = DEFAULT_K,
) -> tuple[Space, list[SearchHit]]:
    """``search_similar`` in the space that holds this generation's image (the most-filled
    one when several CLIPs embedded it); returns the space and the hits."""
    _ready(conn)
    if generation_id not in reads.shown(conn, [generation_id]):
        raise SearchError(f"generation {generation_id} does not exist (deleted, or a bad link)")
    for sp in emb.spaces(conn):
        if reads.embedding_of(conn, sp, generation_id) is not None:
            return sp, search_similar(conn, sp, generation_id, f, k)
    raise SearchError(
        f"generation {generation_id} has no stored image embedding: it has not been scored "
        "with CLIP since pgvector was installed (`diffwatch score --scorers clip` stores it)"
    )
