"""Any decoded Pillow image to 8-bit RGB, with a note for every change a person may care about."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
_SIXTEEN_BIT_GRAY = {"I;16", "I;16L", "I;16B", "I;16N", "I"}
_EXIF_ORIENTATION = 0x0112
_WHITE = (255, 255, 255, 255)

_MODE_NOTES = {
    "P": "palette image converted to RGB",
    "PA": "palette image converted to RGB",
    "L": "grayscale image converted to RGB",
    "LA": "grayscale image converted to RGB",
    "La": "grayscale image converted to RGB",
    "1": "1-bit image converted to RGB",
}


def unusual_mode(im: Image.Image, frames: int) -> tuple[str, str] | None:
    """What makes ``im`` (opened, not decoded) unfit for scoring as it is, and its failure
    kind, or None. Animations, CMYK, palette and alpha images; grayscale and 16-bit images
    convert without guessing, and multi-picture JPEGs (MPO) are JPEGs with extra views."""
    if frames > 1 and im.format != "MPO":
        return f"animated {im.format} with {frames} frames", "animated"
    if im.mode == "CMYK":
        return "CMYK colour (a print colour space)", "unsupported_mode"
    if im.mode in ("P", "PA"):
        return "palette (indexed) colour", "unsupported_mode"
    if im.mode in _ALPHA_MODES or im.info.get("transparency") is not None:
        return f"an alpha channel or transparency (mode {im.mode})", "unsupported_mode"
    return None


def to_rgb(im: Image.Image) -> tuple[Image.Image, tuple[str, ...]]:
    """A loaded image as mode RGB (alpha composited on white) and notes on what changed."""
    notes: list[str] = []
    mode = im.mode
    if mode in _SIXTEEN_BIT_GRAY:
        im = _sixteen_bit_to_l(im)
        notes.append(f"16-bit grayscale ({mode}) scaled to 8 bits and converted to RGB")
    elif mode == "CMYK":
        profile = " (embedded ICC profile ignored)" if im.info.get("icc_profile") else ""
        notes.append(f"converted from CMYK{profile}")
    elif mode in _MODE_NOTES:
        notes.append(_MODE_NOTES[mode])
    elif mode not in ("RGB", "RGBA", "RGBa"):
        notes.append(f"converted from {mode}")

    if im.mode in _ALPHA_MODES or im.info.get("transparency") is not None:
        rgb, alpha_note = _flatten_alpha(im)
        notes.append(alpha_note)
    else:
        rgb = im if im.mode == "RGB" else im.convert("RGB")

    rgb, orient_note = _apply_exif_orientation(im, rgb)
    if orient_note:
        notes.append(orient_note)
    return rgb, tuple(notes)


def _sixteen_bit_to_l(im: Image.Image) -> Image.Image:
    """16-bit (or 32-bit integer) grayscale to 8-bit L, scaling 0..65535 to 0..255, rounded."""
    # Pillow's own convert("L") clips at 255 instead of scaling, which turns most pixels white.
    wide = np.clip(np.asarray(im).astype(np.uint32), 0, 65535)
    narrow = ((wide * 255 + 32767) // 65535).astype(np.uint8)
    out = Image.fromarray(narrow)
    # A 16-bit tRNS value means nothing to the 8-bit copy; EXIF and the rest carry over.
    out.info = {k: v for k, v in im.info.items() if k != "transparency"}
    return out


def _flatten_alpha(im: Image.Image) -> tuple[Image.Image, str]:
    """Composite any transparency onto white; say so, or say the alpha was fully opaque."""
    rgba = im.convert("RGBA")
    low, _high = rgba.getchannel("A").getextrema()
    if low == 255:
        return rgba.convert("RGB"), "alpha channel fully opaque, dropped"
    canvas = Image.new("RGBA", rgba.size, _WHITE)
    canvas.alpha_composite(rgba)
    return canvas.convert("RGB"), "alpha composited on white"


def _apply_exif_orientation(
    source: Image.Image, rgb: Image.Image
) -> tuple[Image.Image, str | None]:
    """Rotate/flip ``rgb`` the way viewers show ``source`` (EXIF orientation 2..8)."""
    try:
        orientation = source.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # A broken EXIF block must not lose an otherwise good image.
        return rgb, "EXIF block unreadable, orientation ignored"
    if orientation not in range(2, 9):
        return rgb, None
    exif = rgb.getexif()
    exif[_EXIF_ORIENTATION] = orientation
    return ImageOps.exif_transpose(rgb), f"rotated per EXIF orientation {orientation}"
