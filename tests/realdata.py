"""Where the shared real public data lives, for tests that use it (skipped where it is absent).

Import as ``from realdata import ...`` (like ``synthetic``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared" / "realdata"
"""``../shared/realdata`` beside the repository (the project's public real scans)."""

SUNNYBROOK = SHARED / "sunnybrook"
"""Five Sunnybrook Cardiac Data patients (CC0): cine DICOM ED/ES frames + expert LV contours."""

SUNNYBROOK_ED_FRAME = {
    "SCD0000101": 18,
    "SCD0000201": 19,
    "SCD0000301": 19,
    "SCD0000401": 19,
    "SCD0000501": 18,
}
"""ED frame of each patient in its full 20-frame cine (the data's README table)."""

SUNNYBROOK_SLICES = {"SCD0000101": 12, "SCD0000201": 13, "SCD0000301": 10, "SCD0000401": 11, "SCD0000501": 11}
"""Slice positions of each patient (the data's README table)."""


def sunnybrook_patients() -> list[Path]:
    """The Sunnybrook patient folders, or skip the test when the shared data is not on this machine."""
    pytest.importorskip("pydicom")
    if not SUNNYBROOK.is_dir():
        pytest.skip(f"real data not found at {SUNNYBROOK}")
    return sorted(p for p in SUNNYBROOK.iterdir() if (p / "dicom").is_dir())
