"""Gate options refuse, before anything is stored, a label the run's deploy marker would
refuse at its end (control and bidi characters, over-long names)."""

from __future__ import annotations

from pathlib import Path

import pytest

from diffwatch.gate.run import GateOptions
from diffwatch.gate.work import SideSpec


@pytest.mark.parametrize("label", ["v1\u202egnp.exe", "v1\nfake line", "x" * 500])
def test_a_hostile_label_is_refused_up_front(label: str) -> None:
    opts = GateOptions(
        candidate=SideSpec(label, pipeline="/m/c"),
        baseline=SideSpec("prod", pipeline="/m/b"),
        output_dir=Path("/tmp/out"),
        suites=("s.tsv",),
    )
    with pytest.raises(ValueError, match="--candidate-label"):
        opts.check()


def test_a_plain_label_passes() -> None:
    GateOptions(
        candidate=SideSpec("sd15-ft-v3", pipeline="/m/c"),
        baseline=SideSpec("prod", pipeline="/m/b"),
        output_dir=Path("/tmp/out"),
        suites=("s.tsv",),
    ).check()
