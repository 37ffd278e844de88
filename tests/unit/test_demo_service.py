"""The demo service's planning (which minutes, when to rotate) and its file output."""

from __future__ import annotations

from datetime import UTC, datetime

from PIL import Image

from diffwatch.demo.files import ImageStore, RotatingLog
from diffwatch.demo.service import minutes_to_simulate, rotation_minutes


def test_only_minutes_not_stored_yet_are_simulated():
    assert minutes_to_simulate(100, 200, set()) == [range(100, 200)]
    assert minutes_to_simulate(100, 200, set(range(100, 200))) == []
    # A later run continues where the stored history stops.
    assert minutes_to_simulate(130, 230, set(range(100, 200))) == [range(200, 230)]
    # A longer window also fills in before it, and gaps between earlier runs.
    stored = set(range(100, 180)) | set(range(300, 400))
    assert minutes_to_simulate(50, 350, stored) == [range(50, 100), range(180, 300)]
    assert minutes_to_simulate(100, 100, set()) == []


def test_the_log_rotates_at_midnight_or_at_least_once_halfway():
    day = 1440 * 20_000
    assert rotation_minutes(list(range(day - 60, day + 60))) == {day}
    assert rotation_minutes(list(range(day - 2000, day + 1500))) == {day - 1440, day, day + 1440}
    assert rotation_minutes(list(range(day + 10, day + 20))) == {day + 15}
    assert rotation_minutes([day + 10]) == {day + 10}
    # A run that starts at midnight does not rotate before its first line.
    assert rotation_minutes(list(range(day, day + 30))) == {day + 15}


def test_rotation_renames_and_keeps_every_older_file(tmp_path):
    log = RotatingLog(tmp_path)
    log.write(b'{"n": 1}\n')
    log.rotate()
    log.write(b'{"n": 2}\n')
    log.rotate()
    log.rotate()  # nothing written since: no empty file is rotated away
    log.write(b'{"n": 3}\n')
    log.close()
    files = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert files == {
        "gen.jsonl": b'{"n": 3}\n',
        "gen.jsonl.1": b'{"n": 2}\n',
        "gen.jsonl.2": b'{"n": 1}\n',
    }
    assert (log.rotations, log.lines_written) == (2, 3)
    # A new service on the same directory appends to the live log.
    again = RotatingLog(tmp_path)
    again.write(b'{"n": 4}\n')
    again.close()
    assert (tmp_path / "gen.jsonl").read_bytes() == b'{"n": 3}\n{"n": 4}\n'


def test_images_are_written_once_as_valid_png(tmp_path):
    store = ImageStore(tmp_path)
    ts = datetime(2026, 11, 2, 15, 4, tzinfo=UTC)
    path = store.path_for("abc", ts)
    assert path == tmp_path.absolute() / "20261102" / "15" / "abc.png"
    store.save(path, Image.new("RGB", (64, 32), (1, 2, 3)))
    store.save(path, Image.new("RGB", (64, 32), (9, 9, 9)))
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        assert (img.format, img.size, img.getpixel((0, 0))) == ("PNG", (64, 32), (1, 2, 3))
    assert store.written == 1
    assert [p.name for p in path.parent.iterdir()] == ["abc.png"]  # no temp file left
