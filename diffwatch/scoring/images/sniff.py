"""What a byte string is, judged by its content (magic numbers), never by a file extension.

Used to explain why bytes could not be opened as PNG, JPEG or WEBP: another image format,
text (an error page saved in place of the image), an archive, or a file that was cut short.
Descriptions name a format or a kind of content, never the content itself: reasons are shown
to every dashboard user, and an ``image_uri`` may point at a file nobody meant to show.
"""

from __future__ import annotations

import struct

SUPPORTED_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "WEBP")

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_BMP_DIB_HEADER_SIZES = {12, 16, 40, 52, 56, 64, 108, 124}
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}
_TEXT_CONTROL_OK = {9, 10, 12, 13}  # tab, newline, form feed, carriage return

# (prefix, name) pairs tried in order; only prefixes long enough not to hit by chance.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (_PNG_SIGNATURE, "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "TIFF"),
    (b"MM\x00+", "TIFF"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL"),
    (b"\xff\x0a", "JPEG XL"),
    (b"8BPS", "PSD"),
    (b"qoif", "QOI"),
    (b"DDS ", "DDS"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"\x00\x00\x02\x00", "CUR"),
    (b"%PDF", "PDF"),
)


def sniff_format(data: bytes) -> str | None:
    """The format name that ``data``'s first bytes announce ("PNG", "GIF", ...), or None."""
    for prefix, name in _MAGIC:
        if data.startswith(prefix):
            return name
    if data.startswith(b"RIFF") and len(data) >= 12:
        kind = data[8:12]
        return "WEBP" if kind == b"WEBP" else "a RIFF container (not WEBP)"
    if data[4:8] == b"ftyp" and len(data) >= 12:
        brand = data[8:12]
        if brand in (b"avif", b"avis"):
            return "AVIF"
        if brand in _HEIF_BRANDS:
            return "HEIF"
        return "ISO media (not AVIF or HEIF)"
    if data.startswith(b"BM") and len(data) >= 18:
        (dib_size,) = struct.unpack_from("<I", data, 14)
        if dib_size in _BMP_DIB_HEADER_SIZES:
            return "BMP"
    if _is_text(data[:512]) and b"<svg" in data[:4096].lower():
        return "SVG"
    return None


def describe_unknown(data: bytes) -> str:
    """A short description of bytes that are no image format we know: its kind and size
    (bytes), never a quote of the bytes themselves."""
    size = f"{len(data):,} bytes, content not shown"
    if data.startswith(b"\x1f\x8b"):
        return f"gzip-compressed data ({size})"
    if data.startswith(b"PK\x03\x04"):
        return f"a ZIP archive ({size})"
    head = data[:512]
    if _is_text(head):
        start = head.lstrip()[:1]
        hint = ""
        if start == b"<":
            hint = "; HTML/XML: perhaps an error page was saved in place of the image"
        elif start in (b"{", b"["):
            hint = "; JSON: perhaps an API error response was saved in place of the image"
        return f"text ({size}{hint})"
    return f"binary data of no known format ({size})"


def looks_truncated(fmt: str, data: bytes) -> bool:
    """Whether ``data`` (announcing ``fmt``) ends before its own structure says it should."""
    if fmt == "PNG":
        return not png_is_complete(data)
    if fmt == "WEBP":
        if len(data) < 8:
            return True
        (riff_size,) = struct.unpack_from("<I", data, 4)
        return len(data) < 8 + riff_size
    if fmt == "JPEG":
        # The end-of-image marker; real files may carry trailing bytes after it.
        return b"\xff\xd9" not in data
    return False


def png_is_complete(data: bytes) -> bool:
    """Whether a PNG's chunks all fit in ``data`` and it reaches its IEND chunk."""
    pos = len(_PNG_SIGNATURE)
    while pos + 8 <= len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length  # length, type, payload, CRC
        if end > len(data):
            return False
        if kind == b"IEND":
            return True
        pos = end
    return False


def _is_text(head: bytes) -> bool:
    """Whether ``head`` looks like UTF-8 text: no control bytes, decodes cleanly."""
    if not head:
        return False
    if any(b < 32 and b not in _TEXT_CONTROL_OK for b in head):
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut by the 512-byte window is still text.
        return exc.start >= len(head) - 3
    return True
