"""Re-generated images get one file per item key, whatever characters the key holds."""

from __future__ import annotations

from PIL import Image

from diffwatch.drift.regen import save_png


def test_keys_that_sanitise_alike_get_their_own_files(tmp_path):
    img = Image.new("RGB", (8, 8), "red")
    paths = {save_png(img, tmp_path, k) for k in ("a/b", "a_b", "a b", "../etc/passwd")}
    assert len(paths) == 4
    assert all(p.startswith(str(tmp_path)) and p.endswith(".png") for p in paths)
    assert save_png(img, tmp_path, "req-1") == str(tmp_path / "req-1.png")  # safe keys kept
