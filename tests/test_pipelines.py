"""More pipelines: M&Ms and nnU-Net presets, detection, and a refused unknown layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from synthetic import phantom, write_nifti

from cmrqc_widgets.cases import load_case
from cmrqc_widgets.cases.nnunet import gather_nnunet
from cmrqc_widgets.cli import main
from cmrqc_widgets.errors import CaseError

MNMS = {"LV": 1, "MYO": 2, "RV": 3}
ACDC = {"RV": 1, "MYO": 2, "LV": 3}


def write_mnms(folder: Path) -> Path:
    """An M&Ms-2 subject: {id}_SA_{ED,ES}.nii.gz and _gt beside them."""
    for i, phase in enumerate(("ED", "ES")):
        image, labels = phantom(label_map=MNMS, lv_radius=6.0 - 2 * i)
        write_nifti(folder / f"{folder.name}_SA_{phase}.nii.gz", image)
        write_nifti(folder / f"{folder.name}_SA_{phase}_gt.nii.gz", labels)
    return folder


def write_nnunet(root: Path, subjects: list[str], name=lambda s, p: f"{s}_{p}") -> tuple[Path, Path]:
    """nnU-Net's two folders: imagesTs/<case>_0000.nii.gz and predictions/<case>.nii.gz."""
    for subject in subjects:
        for i, phase in enumerate(("ED", "ES")):
            image, labels = phantom(label_map=ACDC, lv_radius=6.0 - 2 * i)
            write_nifti(root / "imagesTs" / f"{name(subject, phase)}_0000.nii.gz", image)
            write_nifti(root / "predictions" / f"{name(subject, phase)}.nii.gz", labels)
    return root / "imagesTs", root / "predictions"


def test_mnms_subject_is_detected_and_counted(tmp_path: Path) -> None:
    """An M&Ms-2 subject loads without naming the layout, with its own label numbers."""
    case = load_case(write_mnms(tmp_path / "001"), "ES")
    _, labels = phantom(label_map=MNMS, lv_radius=4.0)
    assert case.layout == "mnms"
    assert case.voxel_counts() == {k: int(np.count_nonzero(labels == v)) for k, v in MNMS.items()}


def test_dataset_create_finds_mnms_subjects(tmp_path: Path, capsys) -> None:
    """`cmrqc dataset create` on a folder of M&Ms-2 subjects lists them all."""
    for subject in ("001", "002", "003"):
        write_mnms(tmp_path / "mnms" / subject)
    code = main(
        [
            "dataset",
            "create",
            "mnms",
            "--root",
            str(tmp_path / "root"),
            "--user",
            "alice",
            str(tmp_path / "mnms"),
        ]
    )
    assert code == 0, capsys.readouterr().err
    data = json.loads((tmp_path / "root" / "users" / "alice" / "mnms.json").read_text())
    assert [Path(k).name for k in data] == ["001", "002", "003"]


def test_nnunet_folders_become_one_folder_per_patient(tmp_path: Path) -> None:
    """Images and predictions are linked per patient by the phase in the case name; detected as nnunet."""
    images, predictions = write_nnunet(tmp_path, ["patient001", "patient002"])
    (predictions / "patient002_ES.nii.gz").unlink()
    folders, skipped = gather_nnunet(images, predictions, tmp_path / "cases")
    assert [f.name for f in folders] == ["patient001", "patient002"]
    assert skipped == [f"patient002_ES: no prediction patient002_ES.nii.gz in {predictions}."]
    ed = load_case(folders[0], "ED")
    assert ed.layout == "nnunet"
    _, labels = phantom(label_map=ACDC)
    assert ed.voxel_counts()["LV"] == int(np.count_nonzero(labels == ACDC["LV"]))


def test_nnunet_pattern_without_groups_is_refused(tmp_path: Path) -> None:
    """A --phase-pattern lacking the patient and phase groups is one sentence."""
    images, predictions = write_nnunet(tmp_path, ["p1"])
    with pytest.raises(CaseError, match="needs the groups 'patient' and 'phase'"):
        gather_nnunet(images, predictions, tmp_path / "cases", pattern=r"(\w+)")


def test_nnunet_phase_from_a_table(tmp_path: Path) -> None:
    """Case names without a phase (case_017) get patient and phase from a CSV table."""
    numbers = {("p1", "ED"): "case_001", ("p1", "ES"): "case_002"}
    images, predictions = write_nnunet(tmp_path, ["p1"], name=lambda s, p: numbers[(s, p)])
    table = tmp_path / "phases.csv"
    table.write_text("case,patient,phase\ncase_001,p1,ED\ncase_002,p1,es\n")
    folders, skipped = gather_nnunet(images, predictions, tmp_path / "a")  # no phase in "case_001"
    assert folders == [] and skipped[0] == "case_001: no patient and ED/ES phase in its name or the table."
    folders, skipped = gather_nnunet(images, predictions, tmp_path / "cases", table=table)
    assert skipped == [] and load_case(folders[0], "ES").layout == "nnunet"


def test_dataset_create_from_nnunet_output(tmp_path: Path, capsys) -> None:
    """`dataset create --predictions` makes a case per patient of an nnU-Net run."""
    images, predictions = write_nnunet(tmp_path / "run", ["a01", "a02", "a03"])
    root = tmp_path / "root"
    code = main(
        [
            "dataset",
            "create",
            "run",
            "--root",
            str(root),
            "--user",
            "bob",
            "--predictions",
            str(predictions),
            str(images),
        ]
    )
    assert code == 0, capsys.readouterr().err
    data = json.loads((root / "users" / "bob" / "run.json").read_text())
    assert [Path(k).name for k in data] == ["a01", "a02", "a03"]
    assert all(load_case(k, "ES").layout == "nnunet" for k in data)


@pytest.mark.parametrize("command", ["metrics", "dataset create x"])
def test_unknown_layout_is_a_usage_error(tmp_path: Path, command: str, capsys) -> None:
    """--layout nonsense exits 2 with argparse's sentence, and writes nothing."""
    argv = [*command.split(), "--layout", "nonsense", str(tmp_path)]
    assert main(argv) == 2
    assert "invalid choice: 'nonsense'" in capsys.readouterr().err
    assert not (tmp_path / "metrics.csv").exists() and not Path("metrics.csv").exists()
