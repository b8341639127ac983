"""The store's holes found in the audit of issue 11, each closed: refusals in one sentence, nothing lost."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cmrqc_widgets.errors import DatasetError, InvalidNameError
from cmrqc_widgets.store import QCStore


def test_explicit_empty_user_name_is_refused(tmp_path, monkeypatch):
    """QCStore(root, "") refuses instead of falling back to the OS user."""
    monkeypatch.setenv("CMRQC_USER", "someone")
    with pytest.raises(InvalidNameError, match="User name '' is not allowed"):
        QCStore(tmp_path, "")
    assert QCStore(tmp_path, None).user == "someone"


def test_cli_empty_user_is_refused(tmp_path):
    """`cmrqc demo --user ""` fails with one sentence and writes nothing."""
    run = subprocess.run(
        [sys.executable, "-m", "cmrqc_widgets.cli", "demo", "--root", str(tmp_path / "r"), "--user", ""],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode != 0
    assert "User name '' is not allowed" in run.stderr
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "r" / "users").exists()


@pytest.fixture
def dataset(tmp_path):
    """A reviewer's dataset of two patients (folders need not exist to be decided)."""
    folder = tmp_path / "users" / "alice"
    folder.mkdir(parents=True)
    blank = {"ED_Comments": "", "ES_Comments": ""}
    (folder / "cohort.json").write_text(json.dumps({"/data/p1": blank, "/data/p2": blank}))
    return folder / "cohort.json"


def test_read_only_dataset_file_is_never_replaced(dataset):
    """chmod 444 on a dataset file: the save is refused in one sentence and the file stays byte for byte."""
    before = dataset.read_bytes()
    dataset.chmod(0o444)  # as root this alone stops nothing: the check must be explicit
    ds = QCStore(dataset.parent.parent.parent, "alice").open("cohort.json")
    with pytest.raises(DatasetError, match=r"cohort.json is read-only; nothing was saved\.$"):
        ds.save("/data/p1", "ED", "reject", "leak")
    ds.close()
    assert dataset.read_bytes() == before
    assert not list(dataset.parent.glob("cohort.history*")) or "reject" not in "".join(
        p.read_text() for p in dataset.parent.glob("cohort.history*")
    )


def test_read_only_folder_says_one_sentence(dataset):
    """A read-only reviewer folder refuses the save in one sentence, no traceback, the file unchanged."""
    before = dataset.read_bytes()
    ds = QCStore(dataset.parent.parent.parent, "alice").open("cohort.json")
    dataset.parent.chmod(0o555)
    try:
        with pytest.raises(DatasetError, match=r"is read-only; nothing was saved\.$"):
            ds.save("/data/p1", "ED", "accept", "")
        ds.close()
    finally:
        dataset.parent.chmod(0o755)
    assert dataset.read_bytes() == before


def test_read_only_dataset_in_the_review_screen(dataset):
    """The review screen shows the refusal instead of "saved"."""
    from cmrqc_widgets.widgets import ReviewState

    dataset.chmod(0o444)
    state = ReviewState(dataset.parent.parent.parent, "alice", "cohort.json", remember=False)
    try:
        assert not state.decide("reject")
        assert state.notice.startswith("Not saved:") and "read-only" in state.notice
        assert not state.saved_at
    finally:
        state.close()


def test_duplicate_patient_keys_are_refused_naming_the_key(dataset):
    """A dataset file listing a patient twice is refused in one sentence naming it, and never rewritten."""
    text = (
        '{"/data/p1": {"ED_Comments": "accept:first", "ES_Comments": ""},\n'
        ' "/data/p1": {"ED_Comments": "reject:second", "ES_Comments": ""}}'
    )
    dataset.write_text(text)
    with pytest.raises(DatasetError, match=r"lists '/data/p1' twice; it was left untouched"):
        QCStore(dataset.parent.parent.parent, "alice").open("cohort.json")
    assert dataset.read_text() == text
