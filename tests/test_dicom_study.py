"""DICOM in the dashboard: a zipped study becomes cases, safely, with its metadata pseudonymised."""

from __future__ import annotations

import io
import json
import sys
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from synthetic import REVIEWER, write_dicom_cine

from cmrqc_widgets.cases import load_case, study
from cmrqc_widgets.cli import main
from cmrqc_widgets.errors import CaseError

pytest.importorskip("pydicom")


def zipped(folder: Path, prefix: str = "study/") -> bytes:
    """The files of ``folder`` in a zip, as a reviewer's archive tool makes it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            archive.write(path, prefix + str(path.relative_to(folder)))
    return buffer.getvalue()


def evil_zip(name: str, data: bytes = b"x", symlink: bool = False) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        info = zipfile.ZipInfo(name)
        info.compress_type = zipfile.ZIP_DEFLATED
        if symlink:
            info.external_attr = 0o120777 << 16
        archive.writestr(info, data)
    return buffer.getvalue()


@pytest.mark.parametrize("name", ["../escaped.dcm", "/tmp/absolute.dcm", "a/../../b.dcm", "..\\\\win.dcm"])
def test_zip_path_traversal_is_refused(tmp_path: Path, name: str) -> None:
    """Members naming a place outside the upload are refused; nothing is written anywhere."""
    with pytest.raises(CaseError, match="points outside the upload"):
        study.extract_zip(evil_zip(name), tmp_path / "in")
    assert not (tmp_path / "in").exists() and not (tmp_path / "escaped.dcm").exists()


def test_zip_symlink_member_is_refused(tmp_path: Path) -> None:
    """A member stored as a symbolic link (to /etc/passwd, say) is refused."""
    with pytest.raises(CaseError, match="points outside the upload"):
        study.extract_zip(evil_zip("link.dcm", b"/etc/passwd", symlink=True), tmp_path / "in")


def test_zip_bomb_is_refused(tmp_path: Path) -> None:
    """A member expanding far beyond its compressed size is refused before it is unpacked."""
    with pytest.raises(CaseError, match="a zip bomb"):
        study.extract_zip(evil_zip("bomb.dcm", bytes(50_000_000)), tmp_path / "in")
    assert not (tmp_path / "in").exists()


def test_zip_with_too_many_files_is_refused(tmp_path: Path, monkeypatch) -> None:
    """More members than MAX_MEMBERS: one sentence."""
    monkeypatch.setattr(study, "MAX_MEMBERS", 3)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i in range(4):
            archive.writestr(f"f{i}.dcm", b"x")
    with pytest.raises(CaseError, match="holds 4 files, more than the 3 accepted"):
        study.extract_zip(buffer.getvalue(), tmp_path / "in")


def test_not_a_zip_is_one_sentence(tmp_path: Path) -> None:
    """Random bytes uploaded as a zip: one sentence."""
    with pytest.raises(CaseError, match="not a zip file"):
        study.extract_zip(b"hello", tmp_path / "in")


def test_cine_series_becomes_a_case_with_pseudonymised_metadata(tmp_path: Path) -> None:
    """ED = first frame, ES = the most contracted one; the patient id never reaches the disk."""
    pixels = write_dicom_cine(tmp_path / "dicom", frames=3)
    (folder,) = study.convert_study(tmp_path / "dicom", tmp_path / "cases")
    ed, es = load_case(folder, "ED"), load_case(folder, "ES")
    assert ed.layout == "converted" and ed.shape == (4, 12, 10)
    info = study.read_info(folder)
    assert info["frames_chosen"] == {"ED": 0, "ES": 2}
    assert info["patient_id"] == study.pseudonym("PAT-0042") != "PAT-0042"
    assert (info["study_date"], info["scanner"], info["frames"]) == ("20240131", "GE Signa HDx 1.5 T", 3)
    assert info["spacing_mm"] == [1.25, 1.5, 8.0]
    assert all(b"PAT-0042" not in p.read_bytes() for p in folder.rglob("*") if p.is_file())
    assert "PAT-0042" not in folder.name
    assert np.isclose(es.image.max(), pixels[2].max()) and np.isclose(ed.image.max(), pixels[0].max())


def test_dataset_create_on_a_dicom_folder(tmp_path: Path, capsys) -> None:
    """`cmrqc dataset create` pointed at a DICOM study makes a case per short-axis cine series."""
    write_dicom_cine(tmp_path / "study" / "sax", series_number=5)
    write_dicom_cine(tmp_path / "study" / "sax2", series_number=9, patient_id="OTHER")
    root = tmp_path / "root"
    assert (
        main(["dataset", "create", "study", "--root", str(root), "--user", REVIEWER, str(tmp_path / "study")])
        == 0
    )
    data = json.loads((root / "users" / REVIEWER / "study.json").read_text())
    assert len(data) == 2 and all(load_case(k, "ED").layout == "converted" for k in data)
    assert "2 DICOM series converted" in capsys.readouterr().out


def test_convert_dicom_without_pydicom_is_one_sentence(tmp_path: Path, monkeypatch, capsys) -> None:
    """Without pydicom, convert-dicom says how to install it, in one line, no traceback."""
    write_dicom_cine(tmp_path / "sa", frames=1)
    monkeypatch.setitem(sys.modules, "pydicom", None)
    assert main(["convert-dicom", str(tmp_path / "sa"), str(tmp_path / "out.nii.gz")]) == 1
    err = capsys.readouterr().err
    assert "pip install 'cmrqc_widgets[dicom]'" in err and "Traceback" not in err and err.count("\n") == 1


def test_convert_dicom_reports_the_file_it_wrote(tmp_path: Path, capsys) -> None:
    """An output path without extension gets .nii.gz, and that is the path reported."""
    write_dicom_cine(tmp_path / "sa", frames=1)
    assert main(["convert-dicom", str(tmp_path / "sa"), str(tmp_path / "X")]) == 0
    assert capsys.readouterr().out.startswith(f"{tmp_path / 'X.nii.gz'}: ")
    assert nib.load(tmp_path / "X.nii.gz").shape == (10, 12, 4)
    assert not (tmp_path / "X").exists()


def test_upload_in_the_dashboard_opens_the_new_cases(widget, tmp_path: Path) -> None:
    """A zipped study uploaded through the FileUpload becomes a dataset, opened, with DICOM info shown."""
    write_dicom_cine(tmp_path / "dicom", frames=3)
    data = zipped(tmp_path / "dicom")
    w = widget
    w.dicom_upload.upload.set_trait(
        "value",
        (
            {
                "name": "My study.zip",
                "type": "application/zip",
                "size": len(data),
                "content": memoryview(data),
                "last_modified": datetime.now(timezone.utc),
            },
        ),
    )
    st = w.state
    assert st.dataset == "upload-My-study.json" and st.error == "" and st.case is not None
    assert w.dicom_upload.progress.value == w.dicom_upload.progress.max == 1
    assert "1 case in upload-My-study.json" in w.dicom_upload.status.value
    info = w.case_info.html.value
    for text in (
        study.pseudonym("PAT-0042"),
        "2024-01-31",
        "GE Signa HDx 1.5 T",
        "FIESTA CINE SAX",
        "1.25 x 1.5 x 8 mm",
    ):
        assert text in info
    assert "PAT-0042" not in info
    assert w.slice_view.shows_current


def test_bad_upload_says_why_and_changes_nothing(widget) -> None:
    """A zip with a traversal member: one sentence under the button, the open dataset stays."""
    w = widget
    before = (w.state.dataset, w.state.patient)
    assert w.dicom_upload.import_zip("evil.zip", evil_zip("../../x.dcm")) is None
    assert "points outside the upload" in w.dicom_upload.status.value
    assert (w.state.dataset, w.state.patient) == before
