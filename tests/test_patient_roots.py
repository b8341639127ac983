"""Patient keys that leave the data root: refused in one sentence unless the admin lists the image root."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from synthetic import REVIEWER, write_case, write_dataset

from cmrqc_widgets.cases.roots import IMAGE_ROOTS_ENV, PatientFolderError, image_roots, patient_folder


def tree(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with a digest of its bytes (symlinks not followed)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A data root with one patient inside, and an 'outside' folder with one patient; no extra roots."""
    monkeypatch.delenv(IMAGE_ROOTS_ENV, raising=False)
    root = tmp_path / "root"
    inside = write_case(root / "cohorts" / "p1")
    outside = write_case(tmp_path / "elsewhere" / "secret")
    return root, inside, outside


def test_a_key_with_dotdot_is_refused_even_when_it_lands_inside(site):
    """'..' in a key is refused in one sentence naming the key, wherever it would lead."""
    root, _inside, _outside = site
    roots = image_roots(root)
    for key in ("../elsewhere/secret", f"{root}/cohorts/../cohorts/p1", "cohorts/p1/../p1"):
        with pytest.raises(PatientFolderError, match=r"contains '\.\.'; .* so it is not read\.$"):
            patient_folder(key, roots)


def test_an_absolute_key_outside_the_data_root_is_refused(site):
    """An absolute key naming a folder outside the data root is refused; one inside is read."""
    root, inside, outside = site
    roots = image_roots(root)
    with pytest.raises(PatientFolderError, match=rf"{outside}' is outside the data root .*{IMAGE_ROOTS_ENV}"):
        patient_folder(str(outside), roots)
    with pytest.raises(PatientFolderError, match="outside the data root"):
        patient_folder("/etc", roots)
    assert patient_folder(str(inside), roots) == inside
    assert patient_folder("cohorts/p1", roots) == root / "cohorts" / "p1"


def test_a_symlinked_patient_folder_pointing_outside_is_refused(site):
    """A patient folder inside the root that is a symlink to a folder outside it is refused."""
    root, _inside, outside = site
    (root / "cohorts" / "linked").symlink_to(outside, target_is_directory=True)
    roots = image_roots(root)
    for key in ("cohorts/linked", str(root / "cohorts" / "linked")):
        with pytest.raises(PatientFolderError, match="outside the data root"):
            patient_folder(key, roots)


def test_a_symlink_inside_the_root_is_allowed(site):
    """A symlink whose target stays inside the data root is read, under the name the dataset gives it."""
    root, inside, _outside = site
    (root / "cohorts" / "alias").symlink_to(inside, target_is_directory=True)
    assert patient_folder("cohorts/alias", image_roots(root)) == root / "cohorts" / "alias"


def test_an_image_root_the_admin_lists_is_allowed(site, monkeypatch):
    """Listed in $CMRQC_IMAGE_ROOTS (or passed), the outside folder is read; unlisted, refused."""
    root, _inside, outside = site
    monkeypatch.setenv(IMAGE_ROOTS_ENV, f"relative/ignored:{outside.parent}")
    roots = image_roots(root)
    assert roots == (root.resolve(), outside.parent.resolve())
    assert patient_folder(str(outside), roots) == outside
    assert patient_folder(str(outside), image_roots(root, [outside])) == outside
    with pytest.raises(PatientFolderError):
        patient_folder(str(outside), image_roots(root, []))
    (root / "cohorts" / "linked").symlink_to(outside, target_is_directory=True)
    assert patient_folder("cohorts/linked", roots) == root / "cohorts" / "linked"


def test_review_screen_refuses_outside_patients_and_the_cohort_still_works(site):
    """One sentence for a '..' key and each outside folder; the others load; nothing on disk changes."""
    from cmrqc_widgets.widgets import ReviewWidget

    root, inside, outside = site
    other = write_case(root / "cohorts" / "p2")
    (root / "cohorts" / "linked").symlink_to(outside, target_is_directory=True)
    keys = [str(inside), str(outside), "../elsewhere/secret", "cohorts/linked", str(other)]
    dataset = write_dataset(root, [Path(k) for k in keys], name="cohort.json")
    dataset.write_text(json.dumps({k: {"ED_Comments": "", "ES_Comments": ""} for k in keys}))
    outside_before, dataset_before = tree(outside.parent), dataset.read_bytes()
    w = ReviewWidget(root=root, user=REVIEWER, dataset="cohort.json")
    try:
        st = w.state
        seen = []
        for _ in keys:
            seen.append((st.patient, st.case is not None, st.error))
            if st.case is None:
                assert w.slice_view.image == b"" and w.slice_view.message == st.error
            w.next_patient_button.click()
        assert [ok for _, ok, _ in seen] == [True, False, False, False, True]
        assert seen[1][2] == (
            f"Could not show secret ED: Patient folder {str(outside)!r} is outside the data root and "
            f"the image roots the admin allows ({IMAGE_ROOTS_ENV}), so it is not read."
        )
        dotdot = "Could not show secret ED: Patient key '../elsewhere/secret' contains '..'"
        assert seen[2][2].startswith(dotdot)
        assert "outside the data root" in seen[3][2]
        assert all("Traceback" not in error for _, _, error in seen)
        assert (inside, "ED") in st.cache  # the cache holds what was read: never the outside folder
        assert all((outside, phase) not in st.cache for phase in ("ED", "ES"))
    finally:
        w.close()
    assert tree(outside.parent) == outside_before
    assert dataset.read_bytes() == dataset_before


def test_dataset_create_tells_the_admin_which_cases_screens_would_refuse(site, capsys, monkeypatch):
    """`cmrqc dataset create` on a folder outside the data root says so and names the variable to set."""
    from cmrqc_widgets.cli.core import main

    root, _inside, outside = site

    def create(name: str, folder: Path) -> str:
        assert main(["dataset", "create", name, str(folder), "--root", str(root), "--user", "bob"]) == 0
        return capsys.readouterr().out

    out = create("out.json", outside.parent)
    assert f"1 of them lie outside the data root and ${IMAGE_ROOTS_ENV}" in out
    assert f"{IMAGE_ROOTS_ENV}={outside.parent}" in out
    assert "outside" not in create("in.json", root / "cohorts")
    monkeypatch.setenv(IMAGE_ROOTS_ENV, str(outside.parent))
    assert "outside" not in create("ok.json", outside.parent)


def test_the_hub_passes_the_image_roots_to_every_reviewers_server(tmp_path, monkeypatch):
    """jupyterhub_config.py hands $CMRQC_IMAGE_ROOTS to the reviewers' servers, and nothing when unset."""
    pytest.importorskip("jupyterhub")
    from test_serve import load_hub_config

    base = {"CMRQC_ROOT": str(tmp_path), "CMRQC_HUB_STATE": str(tmp_path / "state")}
    monkeypatch.delenv(IMAGE_ROOTS_ENV, raising=False)
    assert IMAGE_ROOTS_ENV not in load_hub_config(base, monkeypatch).Spawner.environment
    c = load_hub_config({**base, IMAGE_ROOTS_ENV: "/srv/images:/mnt/scans"}, monkeypatch)
    assert c.Spawner.environment[IMAGE_ROOTS_ENV] == "/srv/images:/mnt/scans"
