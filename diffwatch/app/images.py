"""Thumbnails for the dashboard: loaded with the scorers' safe loader, blurred on request."""

from __future__ import annotations

import numpy as np
import streamlit as st
from PIL import Image, ImageFilter

THUMB_PX = 256
BLUR_RADIUS = 18


@st.cache_data(ttl=300, show_spinner=False, max_entries=512)
def thumbnail(
    uri: str | None, blurred: bool, px: int = THUMB_PX
) -> tuple[np.ndarray | None, str | None]:
    """An RGB thumbnail of ``uri`` at most ``px`` pixels a side (blurred when asked), or
    None and why not."""
    from diffwatch.scoring.images.load import LoadedImage, load_image

    loaded = load_image(uri, retries=0, convert_modes=True)
    if not isinstance(loaded, LoadedImage):
        return None, loaded.reason
    im = loaded.to_pil()
    im.thumbnail((px, px))
    if blurred:  # the same blur relative to the picture at every size
        im = im.filter(ImageFilter.GaussianBlur(BLUR_RADIUS * px / THUMB_PX))
    return np.asarray(im), None


def show(uri: str | None, flagged: bool, key: str, px: int = THUMB_PX) -> None:
    """The image (at most ``px`` pixels a side), blurred until the person clicks "Reveal"
    when it is flagged NSFW."""
    revealed = st.session_state.get(f"reveal-{key}", False)
    pixels, why = thumbnail(uri, blurred=flagged and not revealed, px=px)
    if pixels is None:
        st.text(f"image unavailable: {why}")
    else:
        st.image(Image.fromarray(pixels), width="stretch")
    if flagged and not revealed and st.button("Reveal (flagged NSFW)", key=f"btn-{key}"):
        st.session_state[f"reveal-{key}"] = True
        st.rerun()
