"""Shared fixtures. The case builders live in ``synthetic.py`` (import them from there)."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import pytest
from synthetic import write_case

matplotlib.use("Agg")


@pytest.fixture
def case_dir(tmp_path: Path) -> Path:
    """One phantom patient in the 4Dsegment layout (the old app's naming)."""
    return write_case(tmp_path / "data" / "patient001")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")
