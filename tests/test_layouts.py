"""Layouts: presets, Info.cfg frames, custom patterns, detection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from synthetic import LABELS, phantom, write_case, write_nifti

from cmrqc_widgets.cases.layouts import PRESETS, Layout, custom_layout, detect_layout, get_layout, read_frames
from cmrqc_widgets.errors import CaseError, InvalidNameError


@pytest.mark.parametrize("name", ["4dsegment", "ukbb", "acdc"])
def test_preset_label_maps_match_the_pipelines(name: str) -> None:
    """Each preset maps structures to the label numbers its pipeline writes."""
    assert PRESETS[name].label_map == LABELS[name]


@pytest.mark.parametrize("name", ["4dsegment", "ukbb", "acdc"])
def test_detect_layout_finds_each_preset(tmp_path: Path, name: str) -> None:
    """A folder written in a preset's naming is detected as that preset."""
    patient = write_case(tmp_path / "patient007", name)
    assert detect_layout(patient) is PRESETS[name]
    assert get_layout(None, patient) is PRESETS[name]


def test_preset_files_use_the_documented_names(tmp_path: Path) -> None:
    """4dsegment and ukbb file names follow the pipelines' naming for both phases."""
    assert [p.name for p in PRESETS["4dsegment"].files(tmp_path, "ES")] == [
        "lvsa_SR_ES.nii.gz",
        "seg_lvsa_SR_ES.nii.gz",
    ]
    assert [p.name for p in PRESETS["ukbb"].files(tmp_path, "ed")] == ["sa_ED.nii.gz", "seg_sa_ED.nii.gz"]


def test_acdc_frames_come_from_info_cfg(tmp_path: Path) -> None:
    """ACDC file names use the patient folder name and the ED/ES frame numbers of Info.cfg."""
    patient = tmp_path / "patient042"
    patient.mkdir()
    (patient / "Info.cfg").write_text("ED: 3\nES: 14\nGroup: DCM\nNbFrame: 30\n")
    assert read_frames(patient) == {"ED": 3, "ES": 14}
    image, labels = PRESETS["acdc"].files(patient, "ES")
    assert (image.name, labels.name) == ("patient042_frame14.nii.gz", "patient042_frame14_gt.nii.gz")


def test_acdc_missing_info_cfg_is_a_case_error(tmp_path: Path) -> None:
    """Without Info.cfg the ACDC layout cannot name the files and says why."""
    patient = write_case(tmp_path / "patient001", "acdc")
    (patient / "Info.cfg").unlink()
    assert detect_layout(patient).name == "acdc"
    with pytest.raises(CaseError, match=r"Info\.cfg is missing"):
        PRESETS["acdc"].files(patient, "ED")


def test_acdc_info_cfg_without_es_line_is_a_case_error(tmp_path: Path) -> None:
    """An Info.cfg lacking the ES line raises a CaseError naming the missing phase."""
    (tmp_path / "Info.cfg").write_text("ED: 1\nGroup: NOR\n")
    with pytest.raises(CaseError, match=r"Info\.cfg has no ES frame line"):
        read_frames(tmp_path)


def test_acdc_info_cfg_with_bad_frame_is_a_case_error(tmp_path: Path) -> None:
    """A frame entry that is not a whole number raises a CaseError quoting it."""
    (tmp_path / "Info.cfg").write_text("ED: one\nES: 12\n")
    with pytest.raises(CaseError, match=r"ED frame 'one'"):
        read_frames(tmp_path)


def test_uncompressed_nii_is_used_when_nii_gz_is_absent(tmp_path: Path) -> None:
    """Where only the .nii file exists, the layout points to it instead of the .nii.gz."""
    image, labels = phantom()
    write_nifti(tmp_path / "sa_ED.nii", image)
    write_nifti(tmp_path / "seg_sa_ED.nii.gz", labels)
    paths = PRESETS["ukbb"].files(tmp_path, "ED")
    assert [p.name for p in paths] == ["sa_ED.nii", "seg_sa_ED.nii.gz"]
    assert detect_layout(tmp_path).name == "ukbb"


def test_custom_layout_formats_phase_and_patient(tmp_path: Path) -> None:
    """A custom layout fills {phase} and {patient} in its patterns and keeps its label map."""
    layout = custom_layout(
        "{patient}/img_{phase}.nii.gz", "{patient}/lab_{phase}.nii.gz", {"LV": 5, "MYO": 6}
    )
    image, labels = layout.files(tmp_path / "p9", "ES")
    assert image == tmp_path / "p9" / "p9" / "img_ES.nii.gz"
    assert labels.name == "lab_ES.nii.gz"
    assert layout.label_map == {"LV": 5, "MYO": 6}
    assert layout.name == "custom"


@pytest.mark.parametrize(
    ("image", "labels", "label_map", "message"),
    [
        ("{phase}_{site}.nii.gz", "seg.nii.gz", {"LV": 1}, "unknown placeholders"),
        ("../{phase}.nii.gz", "seg.nii.gz", {"LV": 1}, "inside the patient folder"),
        ("/abs/{phase}.nii.gz", "seg.nii.gz", {"LV": 1}, "inside the patient folder"),
        ("a_{phase}.nii.gz", "a_{phase}.nii.gz", {"LV": 1}, "same pattern"),
        ("a_{phase}.nii.gz", "b_{phase}.nii.gz", {"LV": 1, "RV": 1}, "same label value"),
        ("a_{phase}.nii.gz", "b_{phase}.nii.gz", {"LV": 0}, "between 1 and 32767"),
        ("a_{phase.nii.gz", "b_{phase}.nii.gz", {"LV": 1}, "malformed"),
    ],
)
def test_custom_layout_rejects_bad_definitions(
    image: str, labels: str, label_map: dict, message: str
) -> None:
    """Unknown placeholders, paths leaving the folder and ambiguous label maps are refused."""
    with pytest.raises(InvalidNameError, match=message):
        custom_layout(image, labels, label_map)


def test_get_layout_accepts_names_layouts_and_refuses_unknown_names() -> None:
    """get_layout resolves preset names (any case) and Layouts, and refuses an unknown name."""
    assert get_layout("UKBB") is PRESETS["ukbb"]
    layout = custom_layout("i_{phase}.nii", "l_{phase}.nii", {"LV": 1})
    assert get_layout(layout) is layout
    with pytest.raises(InvalidNameError, match="Layout 'nonsense' is unknown"):
        get_layout("nonsense")


def test_detect_layout_error_names_the_folder_and_presets(tmp_path: Path) -> None:
    """A folder with no known files raises a CaseError naming it and every preset tried."""
    folder = tmp_path / "empty_patient"
    folder.mkdir()
    (folder / "notes.txt").write_text("nothing here")
    with pytest.raises(CaseError, match=r"empty_patient.*4dsegment.*ukbb.*acdc") as info:
        detect_layout(folder)
    assert "lvsa_SR_{phase}.nii.gz" in str(info.value)


def test_detect_layout_missing_folder(tmp_path: Path) -> None:
    """Detecting in a folder that does not exist raises a CaseError naming it."""
    with pytest.raises(CaseError, match=r"nowhere does not exist"):
        detect_layout(tmp_path / "nowhere")


def test_detection_prefers_the_preset_with_most_files(tmp_path: Path) -> None:
    """With a stray file of another pipeline, the preset with the most files present wins."""
    patient = write_case(tmp_path / "p1", "ukbb")
    write_nifti(patient / "lvsa_SR_ED.nii.gz", np.zeros((4, 4, 2), np.float32))
    assert detect_layout(patient).name == "ukbb"


def test_layouts_are_hashable_by_content() -> None:
    """Equal layouts hash equal, so they can key a cache; different patterns differ."""
    a = Layout("x", "i_{phase}.nii.gz", "l_{phase}.nii.gz", {"LV": 1})
    b = Layout("x", "i_{phase}.nii.gz", "l_{phase}.nii.gz", {"LV": 1})
    c = Layout("x", "img_{phase}.nii.gz", "l_{phase}.nii.gz", {"LV": 1})
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b, c}) == 2
