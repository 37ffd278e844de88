"""``import diffwatch.sdk`` stays light: no torch, diffusers, transformers or Streamlit."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_sdk_loads_nothing_heavy() -> None:
    code = (
        "import sys, diffwatch.sdk as s;"
        "assert callable(s.watch) and s.GenerationLogger and s.DirectorySink and s.HttpSink;"
        "heavy = ('torch', 'diffusers', 'transformers', 'streamlit', 'open_clip', 'sqlalchemy');"
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"
