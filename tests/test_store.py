"""The decision store: old-app file format, safety of names and files, statistics, history."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from cmrqc_widgets.errors import DatasetError, InvalidNameError
from cmrqc_widgets.store import (
    Decision,
    QCStore,
    Statistics,
    UnknownPatientError,
    read_dataset_file,
)
from cmrqc_widgets.store.fileformat import encode_dataset
from cmrqc_widgets.store.journal import Watermark, watermark_path, write_watermark

# A file as the old app and hand edits leave them: variants, extra keys, a patient without comments.
OLD_FILE = {
    "/data/ukbb/1000213": {
        "ED_Comments": "accept:Good segmentation quality",
        "ES_Comments": "reject:Poor myocardium boundary",
        "reviewed_by": "bob",
        "score": 3,
    },
    "/data/ukbb/1000456": {"ED_Comments": "", "ES_Comments": ""},
    "/data/ukbb/0000001": {"ED_Comments": "fine-tune:apex missing", "ES_Comments": "Accept:ok"},
    "/data/ukbb/1000999": {"ED_Comments": ":comment only", "ES_Comments": "maybe:not sure"},
    "/data/ukbb/0500000": {"ES_Comments": "reject:time: 12:30, see note", "extra": {"nested": [1, None]}},
    "/data/ukbb/0700000": {"ED_Comments": "UNCLASSIFIED:", "ES_Comments": "Fine-Tune"},
}


def write_old(store: QCStore, name: str = "cohort.json", data: dict | None = None) -> Path:
    """Write ``data`` as the old app did (``json.dump(indent=4)``) into the reviewer's folder."""
    store.folder.mkdir(parents=True, exist_ok=True)
    path = store.folder / name
    path.write_text(json.dumps(OLD_FILE if data is None else data, indent=4))
    return path


@pytest.fixture
def store(tmp_path: Path) -> QCStore:
    return QCStore(tmp_path / "root", "alice")


@pytest.mark.parametrize(
    ("text", "decision", "comment"),
    [
        ("", None, ""),
        ("accept:Good", "accept", "Good"),
        ("Accept:Good", "accept", "Good"),
        ("REJECT:leak", "reject", "leak"),
        ("fine-tune:apex", "finetune", "apex"),
        ("Fine-Tune", "finetune", ""),
        ("finetune:", "finetune", ""),
        ("unclassified:x", "unclassified", "x"),
        (":just a note", None, "just a note"),
        ("accept:time: 12:30", "accept", "time: 12:30"),
        ("maybe:not sure", None, "maybe:not sure"),
        ("a note without colon", None, "a note without colon"),
    ],
)
def test_parse_reads_variants_found_in_the_wild(text: str, decision: str | None, comment: str) -> None:
    """Decision.parse reads canonical, capitalised, hyphenated, comment-only and unknown-word strings."""
    parsed = Decision.parse(text)
    assert parsed == Decision(decision, comment)
    assert Decision.parse(parsed.encode()) == parsed


@pytest.mark.parametrize(
    ("decision", "encoded"),
    [
        (Decision(), ""),
        (Decision("accept"), "accept:"),
        (Decision("fine-tune", "x"), "finetune:x"),
        (Decision(None, "note"), ":note"),
        (Decision(None, "maybe:x"), ":maybe:x"),
        (Decision("reject", "a:b:c"), "reject:a:b:c"),
    ],
)
def test_encode_writes_canonical_form(decision: Decision, encoded: str) -> None:
    """Decision.encode writes '<decision>:<comment>', ':<comment>' or '' and parses back to itself."""
    assert decision.encode() == encoded
    assert Decision.parse(encoded) == decision


def test_decision_refuses_unknown_word() -> None:
    """A decision outside the four (or None) is refused with InvalidNameError."""
    with pytest.raises(InvalidNameError, match="'maybe' is not allowed"):
        Decision("maybe")


def test_round_trip_of_old_file_keeps_everything_untouched(store: QCStore) -> None:
    """Reading an old-format file and saving one decision keeps other keys, patients, values and order."""
    path = write_old(store)
    ds = store.open("cohort.json")
    assert ds.patients == list(OLD_FILE)
    assert ds.get("/data/ukbb/1000213", "ED") == Decision("accept", "Good segmentation quality")
    assert ds.get("/data/ukbb/0000001", "ED") == Decision("finetune", "apex missing")
    assert ds.get("/data/ukbb/0000001", "ES") == Decision("accept", "ok")
    assert ds.get("/data/ukbb/1000999", "ED") == Decision(None, "comment only")
    assert ds.get("/data/ukbb/1000999", "ES") == Decision(None, "maybe:not sure")
    assert ds.get("/data/ukbb/0500000", "ED") == Decision()
    assert ds.get("/data/ukbb/0500000", "ES") == Decision("reject", "time: 12:30, see note")
    assert ds.get("/data/ukbb/0700000", "ED") == Decision("unclassified", "")

    ds.save("/data/ukbb/0000001", "ES", "reject", "wall: too thick")
    ds.save("/data/ukbb/0500000", "ED", "accept")
    ds.close()

    expected = json.loads(json.dumps(OLD_FILE))
    expected["/data/ukbb/0000001"]["ES_Comments"] = "reject:wall: too thick"
    expected["/data/ukbb/0500000"]["ED_Comments"] = "accept:"
    on_disk = json.loads(path.read_text())
    assert list(on_disk) == list(OLD_FILE)
    assert on_disk == expected
    assert list(on_disk["/data/ukbb/1000213"]) == ["ED_Comments", "ES_Comments", "reviewed_by", "score"]
    assert path.read_text() == json.dumps(expected, indent=4)
    reopened = QCStore(store.root, "alice").open("cohort.json")
    assert reopened.get("/data/ukbb/0000001", "ES") == Decision("reject", "wall: too thick")
    assert reopened.get("/data/ukbb/0000001", "ED") == Decision("finetune", "apex missing")


def test_encode_dataset_matches_json_dumps_indent_4() -> None:
    """The fast writer produces exactly json.dumps(indent=4), nested values and non-ASCII included."""
    data = dict(OLD_FILE)
    data["/data/ünïcode"] = {"ED_Comments": 'accept:"quoted" \\ ✓\n', "x": {}, "y": [], "z": 1.5}
    data["/data/empty"] = {}
    assert encode_dataset(data) == json.dumps(data, indent=4)
    assert encode_dataset({}) == json.dumps({}, indent=4)


def test_save_comment_none_keeps_comment_and_none_clears_decision(store: QCStore) -> None:
    """comment=None keeps the stored comment; decision=None clears the decision but keeps a comment."""
    ds = store.create("c.json", ["p1"])
    ds.save("p1", "ED", "reject", "leak: atrium")
    assert ds.save("p1", "ED", "finetune") == Decision("finetune", "leak: atrium")
    assert ds.save("p1", "ED", None) == Decision(None, "leak: atrium")
    ds.flush()
    assert json.loads(ds.path.read_text())["p1"]["ED_Comments"] == ":leak: atrium"
    assert ds.save("p1", "ED", None, "") == Decision()
    ds.flush()
    assert json.loads(ds.path.read_text())["p1"]["ED_Comments"] == ""


def test_save_refuses_unknown_patient_phase_and_decision(store: QCStore) -> None:
    """Unknown patient -> DatasetError (also a KeyError); bad phase or decision -> InvalidNameError."""
    ds = store.create("c.json", ["p1"])
    with pytest.raises(DatasetError, match=r"Patient 'nobody' is not in dataset file .*c\.json"):
        ds.save("nobody", "ED", "accept")
    with pytest.raises(KeyError):
        ds.get("nobody", "ED")
    with pytest.raises(InvalidNameError, match="Phase 'XX' is not allowed"):
        ds.save("p1", "XX", "accept")
    with pytest.raises(InvalidNameError, match="'great' is not allowed"):
        ds.save("p1", "ED", "great")
    assert isinstance(UnknownPatientError("x"), KeyError)
    assert ds.get("p1", "ED") == Decision()


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b'{"p1": {"ED_Comments": "accept:', "not valid JSON"),
        (b"", "not valid JSON"),
        (b'["p1", "p2"]', "expected an object keyed by patient"),
        (b'{"p1": "accept:x"}', "holds str instead of an object"),
        (b'{"p1": {"ED_Comments": 3}}', "ED_Comments of patient 'p1' is int"),
    ],
)
def test_corrupt_file_raises_and_is_never_overwritten(store: QCStore, content: bytes, problem: str) -> None:
    """A corrupt file gives DatasetError naming it, on open and on save, and its bytes stay the same."""
    ds = store.create("c.json", ["p1"])
    ds.save("p1", "ED", "accept")
    ds.close()
    history_before = ds.journal_path.read_bytes()
    ds.path.write_bytes(content)
    with pytest.raises(DatasetError, match=rf"c\.json .*{problem}"):
        store.open("c.json")
    with pytest.raises(DatasetError, match=r"c\.json"):
        ds.save("p1", "ES", "reject", "x")
    ds.close()
    assert ds.path.read_bytes() == content
    assert ds.journal_path.read_bytes() == history_before


def test_missing_dataset_raises(store: QCStore) -> None:
    """Opening a dataset that does not exist is a DatasetError naming the file."""
    with pytest.raises(DatasetError, match=r"nothere\.json does not exist"):
        store.open("nothere.json")


@pytest.mark.parametrize(
    "name", ["../x", "/etc/passwd", "a/b.json", "..json", "../../etc/x.json", ".hidden.json"]
)
def test_hostile_dataset_names_refused(store: QCStore, name: str) -> None:
    """Dataset names that could leave the reviewer's folder are refused."""
    with pytest.raises(InvalidNameError, match="not allowed"):
        store.open(name)
    with pytest.raises(InvalidNameError, match="not allowed"):
        store.create(name, ["p1"])


@pytest.mark.parametrize("user", ["../x", "/etc/passwd", "a/b", "..", "alice/../bob"])
def test_hostile_user_names_refused(tmp_path: Path, user: str) -> None:
    """User names that could leave the data root are refused."""
    with pytest.raises(InvalidNameError, match="not allowed"):
        QCStore(tmp_path, user)


def test_symlinked_dataset_leading_out_is_refused(store: QCStore, tmp_path: Path) -> None:
    """A dataset file symlinked to a file outside the reviewer's folder is neither listed nor opened."""
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps({"p1": {"ED_Comments": "", "ES_Comments": ""}}))
    store.create("ok.json", ["p1"])
    (store.folder / "evil.json").symlink_to(outside)
    assert store.datasets() == ["ok.json"]
    with pytest.raises(InvalidNameError, match="outside"):
        store.open("evil.json")
    with pytest.raises(InvalidNameError, match="outside"):
        store.create("evil.json", ["p1"], exist_ok=True)
    assert json.loads(outside.read_text()) == {"p1": {"ED_Comments": "", "ES_Comments": ""}}


def test_symlinked_user_folder_leading_out_is_refused(tmp_path: Path) -> None:
    """A reviewer folder that is a symlink out of the data root is refused."""
    root = tmp_path / "root"
    (root / "users").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (root / "users" / "mallory").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(InvalidNameError, match="outside"):
        QCStore(root, "mallory")


def test_create_makes_private_folder_and_refuses_existing(store: QCStore) -> None:
    """create() makes root/users/<user> with mode 0700, writes indent=4, refuses an existing name."""
    ds = store.create("c.json", ["/a", Path("/b"), "/a"])
    assert store.folder == store.root / "users" / "alice"
    assert os.stat(store.folder).st_mode & 0o777 == 0o700
    assert ds.patients == ["/a", "/b"]
    assert ds.path.read_text() == json.dumps(
        {"/a": {"ED_Comments": "", "ES_Comments": ""}, "/b": {"ED_Comments": "", "ES_Comments": ""}}, indent=4
    )
    with pytest.raises(DatasetError, match="already exists"):
        store.create("c.json", ["/z"])
    assert store.create("c.json", ["/z"], exist_ok=True).patients == ["/a", "/b"]


def test_datasets_relisted_on_every_call(store: QCStore) -> None:
    """datasets() lists only *.json files and sees a file created after the store was made."""
    assert store.datasets() == []
    store.create("b.json", ["p"]).save("p", "ED", "accept")
    assert store.datasets() == ["b.json"]
    write_old(store, "a.json")
    (store.folder / "notes.txt").write_text("x")
    assert store.datasets() == ["a.json", "b.json"]
    assert not any(name.endswith(".json") for name in os.listdir(store.folder) if "history" in name)


def test_empty_dataset_works(store: QCStore) -> None:
    """A dataset without patients opens, counts zero and exports only a header."""
    ds = store.create("empty.json", [])
    assert ds.patients == []
    assert ds.statistics().total == 0
    assert ds.statistics().percentages["all"]["none"] == 0.0
    assert ds.to_rows() == []


def test_statistics_counts_and_percentages(store: QCStore) -> None:
    """statistics() counts each decision and 'none' per phase and overall, with percentages."""
    ds = store.create("c.json", ["p1", "p2", "p3", "p4"])
    ds.save("p1", "ED", "accept")
    ds.save("p2", "ED", "accept")
    ds.save("p3", "ED", "reject", "leak")
    ds.save("p1", "ES", "fine-tune")
    ds.save("p2", "ES", "unclassified")
    ds.save("p4", "ES", None, "only a note")
    stats = ds.statistics()
    assert isinstance(stats, Statistics)
    assert stats.total == 4
    assert stats.counts["ED"] == {"accept": 2, "reject": 1, "finetune": 0, "unclassified": 0, "none": 1}
    assert stats.counts["ES"] == {"accept": 0, "reject": 0, "finetune": 1, "unclassified": 1, "none": 2}
    assert stats.counts["all"] == {"accept": 2, "reject": 1, "finetune": 1, "unclassified": 1, "none": 3}
    assert stats.percentages["ED"]["accept"] == pytest.approx(50.0)
    assert stats.percentages["all"]["none"] == pytest.approx(37.5)
    assert sum(stats.percentages["all"].values()) == pytest.approx(100.0)
    assert (stats.decided("ED"), stats.decided("ES"), stats.decided()) == (3, 2, 5)


def test_history_records_every_save(store: QCStore) -> None:
    """Each save appends who, when (UTC), what before and after, and seconds; history(patient) filters."""
    ds = store.create("c.json", ["p1", "p2"])
    ds.save("p1", "ED", "reject", "leak", seconds=12.5)
    ds.save("p2", "ES", "accept")
    ds.save("p1", "ED", "accept", seconds=3)
    history = ds.history()
    assert [(h.patient, h.phase) for h in history] == [("p1", "ED"), ("p2", "ES"), ("p1", "ED")]
    first, _, third = history
    assert first.user == "alice"
    assert first.previous == Decision()
    assert first.new == Decision("reject", "leak")
    assert first.seconds == 12.5
    assert third.previous == Decision("reject", "leak")
    assert third.new == Decision("accept", "leak")
    assert history[1].seconds is None
    when = datetime.fromisoformat(first.time)
    assert when.utcoffset() == timedelta(0)
    assert [h.new for h in ds.history("p1")] == [Decision("reject", "leak"), Decision("accept", "leak")]
    assert ds.journal_path.name == "c.history.jsonl"
    lines = ds.journal_path.read_text().splitlines()
    assert len(lines) == 3
    assert json.loads(lines[0])["previous"] == {"decision": None, "comment": ""}


def test_history_survives_a_torn_journal_line(store: QCStore) -> None:
    """A fragment left by a writer killed mid-append is skipped and the next save stays readable."""
    ds = store.create("c.json", ["p1"])
    ds.save("p1", "ED", "accept")
    with open(ds.journal_path, "ab") as handle:
        handle.write(b'{"time": "2025-01-01", "user": "alice", "pat')
    assert len(ds.history()) == 1
    ds.save("p1", "ES", "reject")
    assert [(h.phase, h.new.decision) for h in ds.history()] == [("ED", "accept"), ("ES", "reject")]


def test_second_object_sees_saves(store: QCStore) -> None:
    """Two Dataset objects on one file see each other's saves and neither loses the other's."""
    first = store.create("c.json", ["p1", "p2"])
    second = store.open("c.json")
    first.save("p1", "ED", "accept")
    second.save("p2", "ED", "reject")
    assert first.get("p2", "ED").decision == "reject"
    assert second.get("p1", "ED").decision == "accept"
    first.close()
    second.close()
    on_disk = read_dataset_file(first.path)
    assert on_disk["p1"]["ED_Comments"] == "accept:"
    assert on_disk["p2"]["ED_Comments"] == "reject:"


def test_edit_by_old_app_is_kept(store: QCStore) -> None:
    """A decision written into the file by another program is seen and kept by our next save."""
    ds = store.create("c.json", ["p1", "p2"])
    data = json.loads(ds.path.read_text())
    data["p2"]["ES_Comments"] = "Reject:from the old app"
    data["p3"] = {"ED_Comments": "", "ES_Comments": ""}
    ds.path.write_text(json.dumps(data, indent=4))
    ds.refresh()
    assert ds.patients == ["p1", "p2", "p3"]
    ds.save("p1", "ED", "accept")
    ds.close()
    on_disk = read_dataset_file(ds.path)
    assert on_disk["p2"]["ES_Comments"] == "Reject:from the old app"
    assert on_disk["p1"]["ED_Comments"] == "accept:"
    assert list(on_disk) == ["p1", "p2", "p3"]


# -- journal first, file within a second (issue 5)


def test_several_objects_see_each_others_saves_at_once(tmp_path: Path) -> None:
    """Three Dataset objects interleave saves; each sees every save at once, before any file rewrite."""
    store = QCStore(tmp_path, "alice", flush_delay=None)
    objects = [store.create("c.json", ["p1", "p2", "p3"])] + [store.open("c.json") for _ in range(2)]
    untouched = objects[0].path.read_bytes()
    for round_ in range(3):
        for i, ds in enumerate(objects):
            ds.save(f"p{i + 1}", "ED" if round_ % 2 else "ES", "reject", f"round {round_} by {i}")
            for other in objects:
                assert other.get(f"p{i + 1}", "ED" if round_ % 2 else "ES") == Decision(
                    "reject", f"round {round_} by {i}"
                )
    assert objects[0].path.read_bytes() == untouched
    assert objects[2].statistics().counts["all"]["reject"] == 6
    objects[1].flush()
    on_disk = read_dataset_file(objects[0].path)
    assert on_disk["p3"] == {"ED_Comments": "reject:round 1 by 2", "ES_Comments": "reject:round 2 by 2"}


def test_flush_writes_old_format_and_sidecars_are_not_datasets(tmp_path: Path) -> None:
    """flush() writes exactly json.dumps(indent=4) of the old format; journal and watermark are not listed."""
    store = QCStore(tmp_path, "alice", flush_delay=None)
    path = write_old(store)
    ds = store.open("cohort.json")
    ds.save("/data/ukbb/1000456", "ED", "Fine-Tune", "apex: 2 slices")
    ds.save("/data/ukbb/1000999", "ES", None)
    ds.flush()
    expected = json.loads(json.dumps(OLD_FILE))
    expected["/data/ukbb/1000456"]["ED_Comments"] = "finetune:apex: 2 slices"
    expected["/data/ukbb/1000999"]["ES_Comments"] = ":maybe:not sure"
    assert path.read_text() == json.dumps(expected, indent=4)
    assert store.datasets() == ["cohort.json"]
    assert sorted(p.name for p in store.folder.iterdir() if not p.name.endswith(".lock")) == [
        "cohort.history.applied",
        "cohort.history.jsonl",
        "cohort.json",
    ]


def test_background_rewrite_brings_file_up_to_date(tmp_path: Path) -> None:
    """Without flush() or close(), the dataset file gets the save shortly after it (background rewrite)."""
    ds = QCStore(tmp_path, "alice", flush_delay=0.05).create("c.json", ["p1"])
    ds.save("p1", "ED", "accept", "soon")
    deadline = time.monotonic() + 30
    while read_dataset_file(ds.path)["p1"]["ED_Comments"] != "accept:soon":
        assert time.monotonic() < deadline, "the dataset file was never rewritten"
        time.sleep(0.01)
    assert ds.error is None


def test_replaying_the_journal_again_changes_nothing(tmp_path: Path) -> None:
    """Replay is idempotent: a watermark reset to 0 (crash before it was written) gives the same file."""
    store = QCStore(tmp_path, "alice", flush_delay=None)
    ds = store.create("c.json", ["p1", "p2"])
    ds.save("p1", "ED", "reject", "first")
    ds.save("p1", "ED", "accept")
    ds.save("p2", "ES", None, "note")
    ds.close()
    written = ds.path.read_text()
    write_watermark(watermark_path(ds.path), Watermark(0))
    again = store.open("c.json")
    assert again.decisions() == ds.decisions()
    again.flush()
    assert ds.path.read_text() == written


def test_old_app_edit_between_save_and_rewrite_is_kept(tmp_path: Path) -> None:
    """The old app edits the file while our save waits for its rewrite: the rewrite keeps both."""
    store = QCStore(tmp_path, "alice", flush_delay=None)
    ds = store.create("c.json", ["p1", "p2"])
    ds.save("p1", "ED", "accept", "ours")
    data = json.loads(ds.path.read_text())  # the old app reads the file, without our save
    data["p2"]["ES_Comments"] = "reject:the old app's"
    ds.path.write_text(json.dumps(data, indent=4))
    assert ds.get("p2", "ES") == Decision("reject", "the old app's")
    ds.flush()
    on_disk = read_dataset_file(ds.path)
    assert on_disk["p1"]["ED_Comments"] == "accept:ours"
    assert on_disk["p2"]["ES_Comments"] == "reject:the old app's"


def test_rewrite_never_overwrites_a_corrupt_file(tmp_path: Path) -> None:
    """flush() leaves a file corrupted after a save untouched (DatasetError); the save stays journalled."""
    store = QCStore(tmp_path, "alice", flush_delay=None)
    ds = store.create("c.json", ["p1", "p2"])
    ds.save("p1", "ES", "reject", "kept")
    ds.path.write_bytes(b'{"p1": {"ED_Co')
    with pytest.raises(DatasetError, match=r"c\.json is not valid JSON"):
        ds.flush()
    assert ds.path.read_bytes() == b'{"p1": {"ED_Co'
    ds.path.write_text(json.dumps({"p1": {"ED_Comments": ""}, "p2": {}}, indent=4))  # repaired by hand
    repaired = store.open("c.json")
    assert repaired.get("p1", "ES") == Decision("reject", "kept")
    repaired.flush()
    assert read_dataset_file(ds.path)["p1"] == {"ED_Comments": "", "ES_Comments": "reject:kept"}


def test_edit_by_old_app_reaches_every_reader(tmp_path: Path) -> None:
    """An old-app edit merged by one Dataset's rewrite is seen by another Dataset on its next read."""
    store = QCStore(tmp_path, "alice", flush_delay=None)
    first = store.create("c.json", ["p1", "p2"])
    second = store.open("c.json")
    data = json.loads(first.path.read_text())
    data["p2"]["ED_Comments"] = "Accept:by the old app"
    first.path.write_text(json.dumps(data, indent=4))
    second.save("p1", "ES", "reject")
    second.flush()
    assert first.get("p2", "ED") == Decision("accept", "by the old app")
    assert first.get("p1", "ES") == Decision("reject")


def test_journal_deleted_by_hand_loses_no_later_save(tmp_path: Path) -> None:
    """After the journal file is deleted, saves go to a new journal and are replayed from its start."""
    store = QCStore(tmp_path, "alice", flush_delay=None)
    ds = store.create("c.json", ["p1", "p2"])
    for i in range(5):
        ds.save("p1", "ED", "accept", f"comment number {i}")
    ds.flush()
    ds.journal_path.unlink()
    ds.save("p2", "ES", "reject", "after the deletion")
    reopened = store.open("c.json")  # as after a crash of `ds` before its rewrite
    assert reopened.get("p2", "ES") == Decision("reject", "after the deletion")
    assert reopened.get("p1", "ED") == Decision("accept", "comment number 4")
    reopened.flush()
    assert read_dataset_file(ds.path)["p2"]["ES_Comments"] == "reject:after the deletion"


def test_recreated_dataset_starts_clean(tmp_path: Path) -> None:
    """A dataset created under the name of a deleted one gets none of the old one's pending saves."""
    store = QCStore(tmp_path, "alice", flush_delay=None)
    old = store.create("c.json", ["p1", "old"])
    old.save("old", "ED", "reject", "pending when deleted")
    old.path.unlink()
    new = store.create("c.json", ["p1", "p2"])
    assert new.patients == ["p1", "p2"]
    assert new.get("p1", "ED") == Decision()
    new.save("p2", "ES", "accept")
    new.close()
    assert list(read_dataset_file(new.path)) == ["p1", "p2"]
    assert [h.patient for h in new.history()] == ["old", "p2"]
