"""Perceived skin tone from a face region's pixels: skin mask, CIELAB, ITA and nearest MST.

The recipe, as in published practice (Merler et al. 2019, "Diversity in Faces", §4;
Thong, Joniak, Xiang 2023, "Beyond Skin Tone: A Multidimensional Measure of Apparent Skin
Color", ICCV):

1. Region: the central part of the face box (``DEFAULT_INNER``). NudeNet gives boxes, not
   landmarks, and a face box's edges hold hair, ears and background; its centre is cheeks,
   nose and forehead, the regions the landmark-based recipes sample.
2. Skin pixels: Chai & Ngan 1999 ("Face segmentation using skin-color map in videophone
   applications", IEEE TCSVT 9(4)): in ITU-R BT.601 YCrCb (full range, as OpenCV's
   ``COLOR_RGB2YCrCb``), a pixel is skin when 133 <= Cr <= 173 and 77 <= Cb <= 127. This
   drops eyes, lips, teeth, hair of most colours and most backgrounds.
   Known limitation: the rule needs some redness (Cr >= 133), so near-neutral very dark skin
   falls outside it; the MST 10 swatch itself (#292420, Cr 130.8) does, every other MST
   swatch passes. Such faces abstain here ("few skin pixels") and the CLIP reading stands
   alone; report the face-pixel abstain rate beside the shares so the gap shows.
3. Colour: the per-channel median of the skin pixels in CIELAB (sRGB IEC 61966-2-1, D65
   white, 2° observer), robust to shadows, highlights and the odd non-skin pixel.
4. ITA = atan2(L* - 50, b*) * 180 / pi, in degrees (Chardon, Cretois, Hourseau 1991,
   Int. J. Cosmet. Sci. 13(4)), with the six categories of Chardon et al. / Del Bino et al.
   2006: very light > 55 >= light > 41 >= intermediate > 28 >= tan > 10 >= brown > -30 >=
   dark.
5. MST: the Monk swatch nearest to the median colour by CIEDE2000 (Sharma, Wu, Dalal 2005,
   "The CIEDE2000 color-difference formula: implementation notes...", Color Res. Appl. 30(1)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from diffwatch.bias.attributes import MST_SWATCHES

__all__ = [
    "DEFAULT_INNER",
    "ITA_CATEGORIES",
    "MIN_SKIN_FRACTION",
    "MIN_SKIN_PIXELS",
    "SkinToneReading",
    "chai_ngan_mask",
    "delta_e_2000",
    "hex_to_rgb",
    "ita_category",
    "ita_degrees",
    "mst_lab",
    "nearest_mst",
    "read_skin_tone",
    "srgb_to_lab",
]

# Central window of a face box, as fractions (x0, y0, x1, y1) of its width and height:
# drops the outer fifth at each side (ears, hair, background) and the top fifth (hairline)
# and keeps down to the chin's upper part.
DEFAULT_INNER = (0.2, 0.2, 0.8, 0.9)
# Too few skin pixels to trust a median: fewer than 64 (an 8x8 patch; a 512-px image's
# face is usually thousands) or under 20% of the central window (the box is then probably
# not a face's skin: a mask, a hand, strong coloured light, or very dark near-neutral skin).
MIN_SKIN_PIXELS = 64
MIN_SKIN_FRACTION = 0.2

# ITA category lower bounds (degrees, exclusive), lightest first.
ITA_CATEGORIES: tuple[tuple[str, float], ...] = (
    ("very_light", 55.0),
    ("light", 41.0),
    ("intermediate", 28.0),
    ("tan", 10.0),
    ("brown", -30.0),
    ("dark", -math.inf),
)

ABSTAIN_FEW_PIXELS = "few skin pixels"
ABSTAIN_NO_FACE = "no face"

# sRGB (linear) -> XYZ, IEC 61966-2-1, and the D65 white point (2 degree observer).
_RGB_TO_XYZ = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ]
)
_D65 = np.array([0.95047, 1.0, 1.08883])


def hex_to_rgb(hex_: str) -> tuple[int, int, int]:
    """'#rrggbb' -> (r, g, b), 0..255."""
    h = hex_.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB uint8 (..., 3) (0..255) -> CIELAB (..., 3) float64: L* 0..100, a*, b*; D65."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = lin @ _RGB_TO_XYZ.T / _D65
    delta = 6.0 / 29.0
    f = np.where(xyz > delta**3, np.cbrt(xyz), xyz / (3 * delta**2) + 4.0 / 29.0)
    L = 116.0 * f[..., 1] - 16.0
    a = 500.0 * (f[..., 0] - f[..., 1])
    b = 200.0 * (f[..., 1] - f[..., 2])
    return np.stack([L, a, b], axis=-1)


def delta_e_2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 colour difference between Lab arrays (..., 3), broadcast; kL = kC = kH = 1.

    Follows Sharma, Wu and Dalal (2005) step by step, including their notes on hue angles.
    """
    L1, a1, b1 = np.moveaxis(np.asarray(lab1, dtype=np.float64), -1, 0)
    L2, a2, b2 = np.moveaxis(np.asarray(lab2, dtype=np.float64), -1, 0)
    c_bar = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2.0
    g = 0.5 * (1.0 - np.sqrt(c_bar**7 / (c_bar**7 + 25.0**7)))
    a1p, a2p = (1.0 + g) * a1, (1.0 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.where((a1p == 0) & (b1 == 0), 0.0, np.degrees(np.arctan2(b1, a1p)) % 360.0)
    h2p = np.where((a2p == 0) & (b2 == 0), 0.0, np.degrees(np.arctan2(b2, a2p)) % 360.0)
    dlp = L2 - L1
    dcp = c2p - c1p
    dh = h2p - h1p
    dh = np.where(dh > 180.0, dh - 360.0, np.where(dh < -180.0, dh + 360.0, dh))
    dh = np.where(c1p * c2p == 0, 0.0, dh)
    dhp = 2.0 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh) / 2.0)
    lbp = (L1 + L2) / 2.0
    cbp = (c1p + c2p) / 2.0
    hsum = h1p + h2p
    hbp = np.where(
        c1p * c2p == 0,
        hsum,
        np.where(
            np.abs(h1p - h2p) <= 180.0,
            hsum / 2.0,
            np.where(hsum < 360.0, (hsum + 360.0) / 2.0, (hsum - 360.0) / 2.0),
        ),
    )
    t = (
        1.0
        - 0.17 * np.cos(np.radians(hbp - 30.0))
        + 0.24 * np.cos(np.radians(2.0 * hbp))
        + 0.32 * np.cos(np.radians(3.0 * hbp + 6.0))
        - 0.20 * np.cos(np.radians(4.0 * hbp - 63.0))
    )
    d_theta = 30.0 * np.exp(-(((hbp - 275.0) / 25.0) ** 2))
    rc = 2.0 * np.sqrt(cbp**7 / (cbp**7 + 25.0**7))
    sl = 1.0 + 0.015 * (lbp - 50.0) ** 2 / np.sqrt(20.0 + (lbp - 50.0) ** 2)
    sc = 1.0 + 0.045 * cbp
    sh = 1.0 + 0.015 * cbp * t
    rt = -np.sin(np.radians(2.0 * d_theta)) * rc
    return np.sqrt(
        (dlp / sl) ** 2 + (dcp / sc) ** 2 + (dhp / sh) ** 2 + rt * (dcp / sc) * (dhp / sh)
    )


@cache
def mst_lab() -> tuple[tuple[str, ...], np.ndarray]:
    """The MST swatches' keys and their CIELAB values (10, 3), computed once."""
    keys = tuple(MST_SWATCHES)
    rgb = np.array([hex_to_rgb(MST_SWATCHES[k]) for k in keys], dtype=np.uint8)
    lab = srgb_to_lab(rgb)
    lab.setflags(write=False)
    return keys, lab


def nearest_mst(lab: np.ndarray) -> tuple[str, float]:
    """The MST swatch nearest to one Lab colour (3,) by CIEDE2000, and that distance."""
    keys, swatches = mst_lab()
    d = delta_e_2000(np.asarray(lab, dtype=np.float64)[None, :], swatches)
    i = int(np.argmin(d))
    return keys[i], float(d[i])


def ita_degrees(L: float, b: float) -> float:
    """Individual Typology Angle (degrees) from L* and b*."""
    return math.degrees(math.atan2(L - 50.0, b))


def ita_category(ita: float) -> str:
    """The ITA category (very_light .. dark) of an angle in degrees."""
    return next(name for name, lower in ITA_CATEGORIES if ita > lower)


def chai_ngan_mask(rgb: np.ndarray) -> np.ndarray:
    """Skin mask (H, W) bool of uint8 RGB pixels (H, W, 3) by Chai & Ngan's CrCb ranges."""
    p = np.asarray(rgb, dtype=np.float32)
    r, g, b = p[..., 0], p[..., 1], p[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cr = (r - y) * 0.713 + 128.0
    cb = (b - y) * 0.564 + 128.0
    return (cr >= 133.0) & (cr <= 173.0) & (cb >= 77.0) & (cb <= 127.0)


@dataclass(frozen=True)
class SkinToneReading:
    """Perceived skin tone read from a face's pixels.

    ``label``: nearest MST key (``mst1`` .. ``mst10``) or None when abstained (``reason``).
    ``lab``: median skin colour (L*, a*, b*). ``ita``: degrees; ``ita_category``: its band.
    ``delta_e``: CIEDE2000 distance to the chosen swatch. ``skin_pixels``: pixels that passed
    the mask; ``region_pixels``: pixels of the central window they came from.
    """

    label: str | None
    ita: float | None = None
    ita_category: str | None = None
    lab: tuple[float, float, float] | None = None
    delta_e: float | None = None
    skin_pixels: int = 0
    region_pixels: int = 0
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record; numbers rounded to 0.01."""
        out: dict[str, Any] = {
            "label": self.label,
            "ita": None if self.ita is None else round(self.ita, 2),
            "ita_category": self.ita_category,
            "lab": None if self.lab is None else [round(v, 2) for v in self.lab],
            "delta_e": None if self.delta_e is None else round(self.delta_e, 2),
            "skin_pixels": self.skin_pixels,
            "region_pixels": self.region_pixels,
        }
        if self.reason is not None:
            out["reason"] = self.reason
        return out


def central_window(
    box: tuple[int, int, int, int],
    shape: tuple[int, ...],
    inner: tuple[float, float, float, float] = DEFAULT_INNER,
) -> tuple[int, int, int, int]:
    """(row0, row1, col0, col1) of the central window of ``box`` = (x, y, w, h) in pixels,
    clipped to an image of ``shape`` (H, W, ...)."""
    x, y, w, h = box
    height, width = shape[0], shape[1]
    c0 = min(max(round(float(x + inner[0] * w)), 0), width)
    c1 = min(max(round(float(x + inner[2] * w)), c0), width)
    r0 = min(max(round(float(y + inner[1] * h)), 0), height)
    r1 = min(max(round(float(y + inner[3] * h)), r0), height)
    return r0, r1, c0, c1


def read_skin_tone(
    image: np.ndarray,
    box: tuple[int, int, int, int] | None,
    *,
    inner: tuple[float, float, float, float] = DEFAULT_INNER,
    min_skin_pixels: int = MIN_SKIN_PIXELS,
    min_skin_fraction: float = MIN_SKIN_FRACTION,
    mask: bool = True,
) -> SkinToneReading:
    """Read the perceived skin tone of the face at ``box`` = (x, y, w, h) (pixels) in an
    HxWx3 uint8 RGB ``image``. ``box`` None abstains ("no face"). ``mask`` False uses every
    pixel of the central window (for flat test patches; not for photographs)."""
    if box is None:
        return SkinToneReading(label=None, reason=ABSTAIN_NO_FACE)
    r0, r1, c0, c1 = central_window(box, image.shape, inner)
    region = np.asarray(image[r0:r1, c0:c1])
    n_region = int(region.shape[0] * region.shape[1])
    pixels = region[chai_ngan_mask(region)] if mask else region.reshape(-1, 3)
    n_skin = int(pixels.shape[0])
    if n_skin < min_skin_pixels or n_skin < min_skin_fraction * n_region:
        return SkinToneReading(
            label=None, skin_pixels=n_skin, region_pixels=n_region, reason=ABSTAIN_FEW_PIXELS
        )
    lab = np.median(srgb_to_lab(pixels), axis=0)
    L, a, b = (float(v) for v in lab)
    ita = ita_degrees(L, b)
    key, de = nearest_mst(lab)
    return SkinToneReading(
        label=key,
        ita=ita,
        ita_category=ita_category(ita),
        lab=(L, a, b),
        delta_e=de,
        skin_pixels=n_skin,
        region_pixels=n_region,
    )
