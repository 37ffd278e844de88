"""Streamlit's AppTest runs each page as ``__main__`` and leaves that module in
``sys.modules``; multiprocessing would then re-run the vanished page script in every
process it starts later in this worker (the scoring loader's tests did). Put it back."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _restore_main_module() -> Iterator[None]:
    main = sys.modules["__main__"]
    yield
    sys.modules["__main__"] = main
