"""Shared fixtures. The case builders live in ``synthetic.py`` (import them from there)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import matplotlib
import pytest
from synthetic import REVIEWER, write_case

matplotlib.use("Agg")


@pytest.fixture(scope="session", autouse=True)
def _image_roots(tmp_path_factory: pytest.TempPathFactory):
    """Cases of the tests live in pytest's temporary folders and the shared real data, outside most
    tests' data roots: list both as the admin would (tests of the refusal clear it)."""
    from realdata import SHARED

    from cmrqc_widgets.cases.roots import IMAGE_ROOTS_ENV

    before = os.environ.get(IMAGE_ROOTS_ENV)
    os.environ[IMAGE_ROOTS_ENV] = os.pathsep.join([str(tmp_path_factory.getbasetemp()), str(SHARED)])
    yield
    if before is None:
        os.environ.pop(IMAGE_ROOTS_ENV, None)
    else:
        os.environ[IMAGE_ROOTS_ENV] = before


@pytest.fixture
def case_dir(tmp_path: Path) -> Path:
    """One phantom patient in the 4Dsegment layout (the old app's naming)."""
    return write_case(tmp_path / "data" / "patient001")


@pytest.fixture(scope="session")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo cohort (small volumes), written once per run; tests copy only its dataset file."""
    from cmrqc_widgets.demo import make_demo_cohort

    root = tmp_path_factory.mktemp("cohort")
    make_demo_cohort(root, REVIEWER, shape=(64, 64, 6))
    return root


@pytest.fixture
def root(tmp_path: Path, cohort: Path) -> Path:
    """A fresh data root whose reviewer has demo.json (patients in the shared cohort)."""
    folder = tmp_path / "users" / REVIEWER
    folder.mkdir(parents=True)
    shutil.copy(cohort / "users" / REVIEWER / "demo.json", folder / "demo.json")
    return tmp_path


@pytest.fixture
def widget(root: Path):
    """A review screen on the demo cohort."""
    from cmrqc_widgets.widgets import ReviewWidget

    w = ReviewWidget(root=root, user=REVIEWER)
    yield w
    w.close()


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")
