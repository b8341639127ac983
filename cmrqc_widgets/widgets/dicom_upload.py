"""Upload a zipped DICOM study from the dashboard: each short-axis series becomes a case to review.

The zip is checked before anything is written (:func:`~cmrqc_widgets.cases.study.extract_zip`:
no path leaving the upload, no zip bomb), unpacked in a temporary folder, converted series by
series with a progress bar, and listed in a new dataset file of the reviewer
(``upload-<zip name>.json``) that opens at once. Patient ids are pseudonymised. Any problem is one
sentence under the button; the dashboard keeps working.
"""

from __future__ import annotations

import html
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ipywidgets import HTML, FileUpload, HBox, IntProgress, Layout, VBox

from ..errors import CmrqcError


class DicomUpload(VBox):
    """FileUpload of a DICOM zip, a progress bar and one line of outcome.

    Attributes
    ----------
    upload : ipywidgets.FileUpload
    progress : ipywidgets.IntProgress
        Series converted of the study's series.
    status : ipywidgets.HTML
    """

    def __init__(self, state: Any, guard: Callable[..., Any] | None = None, **kwargs: Any) -> None:
        guard = guard or (lambda f: f)
        self._state = state
        self.upload = FileUpload(accept=".zip", multiple=False, description="DICOM zip")
        self.progress = IntProgress(value=0, min=0, max=1, layout=Layout(width="140px", visibility="hidden"))
        self.status = HTML("")
        self.status.add_class("cmrqc-upload-status")
        self.upload.observe(guard(self._on_upload), "value")
        super().__init__(
            [HTML("<b>Add a DICOM study</b>"), HBox([self.upload, self.progress]), self.status], **kwargs
        )
        self.add_class("cmrqc-dicom-upload")

    def _on_upload(self, change: Any) -> None:
        files = change.new
        if files:
            item = files[0]
            self.import_zip(str(item["name"]), bytes(item["content"]))

    def _step(self, done: int, total: int) -> None:
        self.progress.max = max(total, 1)
        self.progress.value = done

    def import_zip(self, name: str, data: bytes) -> str | None:
        """Convert the zipped study ``data`` into a new dataset and open it; its name, or None on failure."""
        from ..cases.study import convert_study, extract_zip

        state = self._state
        stem = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(name).stem).strip("-.") or "study"
        dataset = f"upload-{stem}.json"
        n = 1
        while dataset in state.store.datasets():
            n += 1
            dataset = f"upload-{stem}-{n}.json"
        self.progress.layout.visibility = "visible"
        self._step(0, 1)
        self.status.value = f"<small>Converting {html.escape(name)}…</small>"
        try:
            with tempfile.TemporaryDirectory(prefix="cmrqc-upload-") as tmp:
                extract_zip(data, tmp)
                out = Path(state.store.root) / "cases" / Path(dataset).stem
                folders = convert_study(tmp, out, progress=self._step)
            state.store.create(dataset, [str(folder) for folder in folders]).close()
        except (CmrqcError, ImportError, OSError) as exc:
            self.status.value = (
                f"<span style='color:#b00020'>{html.escape(name)}: {html.escape(str(exc))}</span>"
            )
            return None
        state.refresh_datasets()
        state.open_dataset(dataset)
        cases = f"{len(folders)} case{'s' * (len(folders) != 1)}"
        self.status.value = f"<small>{html.escape(name)}: {cases} in {html.escape(dataset)} (opened)</small>"
        return dataset

    def sync_widgets(self) -> list[Any]:
        """Widgets an import updates."""
        return [self.progress, self.status]
