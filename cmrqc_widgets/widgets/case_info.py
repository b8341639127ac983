"""Case info: what the current case is, where it comes from, and what was odd about it."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

from ipywidgets import HTML, VBox

from ..cases.study import read_info
from ..names import STRUCTURES

DICOM_ROWS = (
    ("patient_id", "Patient ID"),
    ("study_date", "Study date"),
    ("scanner", "Scanner"),
    ("sequence", "Sequence"),
    ("spacing_mm", "DICOM spacing"),
    ("frames", "Frames"),
)
"""What the case info shows of a converted DICOM study's metadata (``dicom.json``), in order."""


def dicom_rows(info: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, text) rows of the DICOM metadata stored beside a case ([] when there is none)."""
    rows = []
    for key, label in DICOM_ROWS:
        value = info.get(key)
        if value in (None, "", []):
            continue
        if key == "spacing_mm":
            value = " x ".join(f"{v:g}" for v in value) + " mm"
        elif key == "study_date" and len(str(value)) == 8:
            value = f"{str(value)[:4]}-{str(value)[4:6]}-{str(value)[6:]}"
        rows.append((label, str(value)))
    return rows


class CaseInfo(VBox):
    """Patient key, files, shape, spacing, layout, label voxel counts and load warnings.

    Attributes
    ----------
    html : ipywidgets.HTML
    """

    def __init__(self, state: Any, guard: Callable[..., Any] | None = None, **kwargs: Any) -> None:
        guard = guard or (lambda f: f)
        self._state = state
        self.html = HTML("")
        self.html.add_class("cmrqc-case-info")
        state.observe(guard(self.refresh), "case_serial")
        super().__init__([self.html], **kwargs)
        self.refresh()

    def refresh(self, change: Any = None) -> None:
        """Rebuild the table from the current case (or its error)."""
        state = self._state
        rows = [("Patient", state.patient or "—"), ("Phase", state.phase)]
        case = state.case
        if case is not None:
            counts = case.voxel_counts()
            spacing = " x ".join(f"{s:g}" for s in case.spacing)
            rows += [
                ("Image", str(case.image_path)),
                ("Labels", str(case.labels_path)),
                ("Layout", case.layout),
                ("Shape", " x ".join(str(n) for n in case.shape) + " (slices x rows x cols)"),
                ("Spacing", f"{spacing} mm"),
                ("Voxels", ", ".join(f"{s} {counts.get(s, 0):,}" for s in STRUCTURES if s in counts) or "—"),
            ]
            rows += dicom_rows(read_info(case.patient_dir))
            if case.geometry_note:
                rows.append(("Geometry", case.geometry_note))
            rows += [("Warning", w) for w in case.warnings]
        elif state.error:
            rows.append(("Error", state.error))
        body = "".join(
            f'<tr><th style="text-align:left;padding-right:8px;vertical-align:top">{html.escape(k)}</th>'
            f'<td style="word-break:break-all">{html.escape(str(v))}</td></tr>'
            for k, v in rows
        )
        self.html.value = f'<table style="font-size:12px">{body}</table>'

    def sync_widgets(self) -> list[Any]:
        """Widgets a patient switch updates."""
        return [self.html]
