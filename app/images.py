"""Thumbnails for the dashboard: loaded with the scorers' safe loader, blurred on request."""

from __future__ import annotations

import numpy as np
import streamlit as st
from PIL import Image, ImageFilter

THUMB_PX = 256
BLUR_RADIUS = 18


@st.cache_data(ttl=300, show_spinner=False, max_entries=512)
def thumbnail(uri: str | None, blurred: bool) -> tuple[np.ndarray | None, str | None]:
    """A small RGB thumbnail of ``uri`` (blurred when asked), or None and why not."""
    from scoring.images import LoadedImage, load_image

    loaded = load_image(uri, retries=0, convert_modes=True)
    if not isinstance(loaded, LoadedImage):
        return None, loaded.reason
    im = loaded.to_pil()
    im.thumbnail((THUMB_PX, THUMB_PX))
    if blurred:
        im = im.filter(ImageFilter.GaussianBlur(BLUR_RADIUS))
    return np.asarray(im), None


def show(uri: str | None, flagged: bool, key: str) -> None:
    """The image, blurred until the person clicks "Reveal" when it is flagged NSFW."""
    revealed = st.session_state.get(f"reveal-{key}", False)
    pixels, why = thumbnail(uri, blurred=flagged and not revealed)
    if pixels is None:
        st.text(f"image unavailable: {why}")
    else:
        st.image(Image.fromarray(pixels), width="stretch")
    if flagged and not revealed and st.button("Reveal (flagged NSFW)", key=f"btn-{key}"):
        st.session_state[f"reveal-{key}"] = True
        st.rerun()
