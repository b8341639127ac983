"""ReviewState: the single source of truth of the review screen, driven without any widget."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from synthetic import REVIEWER, on_disk, raw, write_case
from traitlets import TraitError

from cmrqc_widgets.demo import DEMO_BROKEN
from cmrqc_widgets.errors import InvalidNameError
from cmrqc_widgets.store import QCStore
from cmrqc_widgets.widgets.queue import FILTERS
from cmrqc_widgets.widgets.settings import SESSION_FILE
from cmrqc_widgets.widgets.state import ReviewState

USER = REVIEWER


def key_of(state: ReviewState, name: str) -> str:
    return next(k for k in state.patients if k.endswith(name))


def make_state(root: Path, **kwargs) -> ReviewState:
    return ReviewState(root=root, user=USER, remember=False, **kwargs)


def test_opens_first_dataset_on_first_patient(root: Path) -> None:
    """A new state opens the first dataset on its first patient, ED, middle slice."""
    state = make_state(root)
    assert state.dataset == "demo.json"
    assert state.datasets == ["demo.json"]
    assert state.patient_index == 0 and state.patient.endswith("demo001")
    assert state.phase == "ED"
    assert state.case is not None and state.error == ""
    assert state.n_slices == state.case.shape[0]
    assert state.slice == state.n_slices // 2
    assert state.n_total == 10 and state.n_decided == 0


def test_decide_saves_at_once(root: Path) -> None:
    """A decision is written to the dataset file the moment it is made, with the comment draft."""
    state = make_state(root)
    state.set_comment("wall too thin")
    assert state.decide("reject") is True
    entry = on_disk(state)[state.patient]
    assert entry["ED_Comments"] == "reject:wall too thin"
    assert entry["ES_Comments"] == ""
    assert state.decision == "reject"
    assert state.saved_at.startswith("saved ")
    assert state.revision == 1


def test_decide_records_seconds_in_history(root: Path) -> None:
    """Each save records who decided and the seconds spent on the case."""
    state = make_state(root)
    state.decide("accept")
    (entry,) = state.dataset_obj.history(state.patient)
    assert entry.user == USER and entry.new.decision == "accept"
    assert entry.seconds is not None and entry.seconds >= 0


def test_decide_rejects_unknown_word(root: Path) -> None:
    """An unknown decision word is refused and nothing is written."""
    state = make_state(root)
    before = (root / "users" / USER / "demo.json").read_bytes()
    with pytest.raises(InvalidNameError, match="not allowed"):
        state.decide("maybe")
    assert (root / "users" / USER / "demo.json").read_bytes() == before


def test_decide_none_clears(root: Path) -> None:
    """Deciding None clears the stored decision."""
    state = make_state(root)
    state.decide("finetune")
    state.decide(None)
    assert on_disk(state)[state.patient]["ED_Comments"] == ""
    assert state.decision == ""


def test_comment_saved_when_moving_to_next_patient(root: Path) -> None:
    """A comment draft is saved to its own patient and phase when the reviewer moves on."""
    state = make_state(root)
    first = state.patient
    state.set_comment("check apex")
    state.next_patient()
    assert on_disk(state)[first]["ED_Comments"] == ":check apex"
    assert state.comment == ""
    state.prev_patient()
    assert state.comment == "check apex"


def test_comment_saved_on_phase_switch(root: Path) -> None:
    """Switching phase saves the draft to the phase it was typed for."""
    state = make_state(root)
    state.decide("accept")
    state.set_comment("fine")
    state.toggle_phase()
    entry = on_disk(state)[state.patient]
    assert entry["ED_Comments"] == "accept:fine"
    assert entry["ES_Comments"] == ""
    assert state.phase == "ES" and state.comment == ""


def test_comment_saved_on_dataset_switch(root: Path) -> None:
    """Opening another dataset saves the draft into the dataset it belongs to."""
    state = make_state(root)
    QCStore(root, USER).create("other.json", ["/nowhere/p1"])
    state.refresh_datasets()
    first = state.patient
    state.set_comment("typed before switching")
    state.open_dataset("other.json")
    assert on_disk(state)[first]["ED_Comments"] == ":typed before switching"
    assert on_disk(state, "other.json")["/nowhere/p1"]["ED_Comments"] == ""
    assert state.dataset == "other.json"


def test_unchanged_comment_writes_nothing(root: Path) -> None:
    """Moving on without editing writes nothing (no history entry)."""
    state = make_state(root)
    state.next_patient()
    state.toggle_phase()
    assert state.commit_comment() is False
    assert state.dataset_obj.history() == []


def test_next_and_prev_wrap(root: Path) -> None:
    """Next from the last patient wraps to the first, previous from the first to the last."""
    state = make_state(root)
    state.prev_patient()
    assert state.patient_index == 9
    state.next_patient()
    assert state.patient_index == 0
    state.next_patient()
    assert state.patient_index == 1


def test_patient_index_is_clamped(root: Path) -> None:
    """Out-of-range patient indices are clamped, never an error."""
    state = make_state(root)
    state.patient_index = 99
    assert state.patient_index == 9
    state.jump(-5)
    assert state.patient_index == 0


def test_jump_to_by_name(root: Path) -> None:
    """jump_to accepts a patient's folder name or full key."""
    state = make_state(root)
    state.jump_to("demo004")
    assert state.patient.endswith("demo004")
    with pytest.raises(KeyError, match="demo999"):
        state.jump_to("demo999")


def test_phase_is_validated(root: Path) -> None:
    """Only ED and ES are phases; lower case is normalised, anything else refused."""
    state = make_state(root)
    state.set_phase("es")
    assert state.phase == "ES"
    with pytest.raises(InvalidNameError, match="Phase"):
        state.set_phase("../../etc")
    with pytest.raises(TraitError, match="Phase"):
        state.phase = "XX"
    assert state.phase == "ES"


def test_slice_is_clamped_and_steps(root: Path) -> None:
    """Slice steps stop at both ends of the stack (no wrap)."""
    state = make_state(root)
    state.slice = 0
    state.step_slice(-1)
    assert state.slice == 0
    state.slice = 1000
    assert state.slice == state.n_slices - 1
    state.step_slice(+1)
    assert state.slice == state.n_slices - 1


def test_view_switch_changes_slice_count(root: Path) -> None:
    """A long-axis view has as many slices as the image has rows or columns; starts in the middle."""
    state = make_state(root)
    state.view = "hla"
    assert state.n_slices == state.case.shape[1]
    assert state.slice == state.n_slices // 2
    state.view = "vla"
    assert state.n_slices == state.case.shape[2]
    with pytest.raises(TraitError, match="View"):
        state.view = "coronal"


def test_view_settings_are_clamped(root: Path) -> None:
    """Zoom stays in 50-300 %, fps in 1-20, alpha in 0-1; a reversed window is refused."""
    state = make_state(root)
    state.zoom, state.fps, state.alpha = 10.0, 100, 2.0
    assert (state.zoom, state.fps, state.alpha) == (3.0, 20, 1.0)
    with pytest.raises(TraitError, match="above"):
        state.window = [200.0, 100.0]
    with pytest.raises(TraitError, match="Unknown structures"):
        state.visible = ["LV", "liver"]


def test_play_toggles_only_with_a_case(root: Path) -> None:
    """Space toggles play; a patient switch stops it."""
    state = make_state(root)
    state.toggle_play()
    assert state.playing is True
    state.next_patient()
    assert state.playing is False


def test_broken_case_shows_sentence_and_stays_decidable(root: Path) -> None:
    """A corrupt case sets one sentence naming its file; it can still be decided and left."""
    assert "demo009" in DEMO_BROKEN
    state = make_state(root)
    state.jump_to("demo009")
    state.set_phase("ES")
    assert state.case is None
    assert "lvsa_SR_ES.nii.gz" in state.error and "\n" not in state.error
    assert state.n_slices == 0 and state.slice == 0
    state.set_comment("image file broken")
    assert state.decide("reject")
    assert on_disk(state)[state.patient]["ES_Comments"] == "reject:image file broken"
    state.next_patient()
    assert state.error == "" and state.case is not None


def test_empty_dataset_shows_no_patients(tmp_path: Path) -> None:
    """An empty dataset shows "no patients"; navigation and decisions do nothing, no crash."""
    QCStore(tmp_path, USER).create("empty.json", [])
    state = make_state(tmp_path)
    assert "No patients" in state.error
    state.next_patient()
    state.prev_patient()
    state.next_undecided()
    state.step_slice(1)
    assert state.decide("accept") is False
    assert state.patient == "" and state.case is None
    assert raw(tmp_path / "users" / USER, "empty.json") == {}


def test_corrupt_dataset_is_shown_and_never_written(tmp_path: Path) -> None:
    """A corrupt dataset file shows its error and keeps its bytes, whatever the reviewer does."""
    folder = tmp_path / "users" / USER
    folder.mkdir(parents=True)
    path = folder / "broken.json"
    path.write_bytes(b'{"/data/p1": {"ED_Comments": "accept:')
    state = make_state(tmp_path)
    assert "broken.json" in state.error
    state.set_comment("x")
    state.decide("reject")
    state.next_patient()
    state.toggle_phase()
    assert state.commit_comment() is False
    assert path.read_bytes() == b'{"/data/p1": {"ED_Comments": "accept:'
    assert "broken.json" in state.error


def test_no_datasets_message_then_new_file_appears(tmp_path: Path) -> None:
    """With no dataset files the reviewer reads what to do; a new file opens on refresh."""
    state = make_state(tmp_path)
    assert state.dataset == ""
    assert "No datasets" in state.error and "cmrqc" in state.error
    case = write_case(tmp_path / "data" / "p1")
    QCStore(tmp_path, USER).create("new.json", [str(case)])
    assert state.refresh_datasets() == ["new.json"]
    assert state.dataset == "new.json"
    assert state.error == "" and state.case is not None


def test_next_undecided_goes_to_other_phase_then_next_patient(root: Path) -> None:
    """Next undecided visits ES of the same patient first, then the next undecided patient."""
    state = make_state(root)
    state.decide("accept")
    assert state.next_undecided() is True
    assert (state.patient_index, state.phase) == (0, "ES")
    state.decide("accept")
    state.jump(1)
    state.set_phase("ED")
    state.decide("reject")
    state.set_phase("ES")
    state.decide("reject")
    state.jump(0)
    assert state.next_undecided() is True
    assert (state.patient_index, state.phase) == (2, "ED")


def test_next_undecided_when_all_decided(root: Path) -> None:
    """When every phase is decided, next undecided stays put and says so."""
    state = make_state(root)
    for i in range(10):
        state.jump(i)
        for phase in ("ED", "ES"):
            state.set_phase(phase)
            state.decide("accept")
    assert state.n_decided == 10 and state.n_phases_decided == 20
    here = (state.patient_index, state.phase)
    assert state.next_undecided() is False
    assert (state.patient_index, state.phase) == here
    assert "decision" in state.notice


def test_filter_restricts_queue_and_navigation(root: Path) -> None:
    """A filter keeps only matching patients in the queue; next/prev move within it, wrapping."""
    state = make_state(root)
    state.jump(3)
    state.decide("reject")
    state.jump(7)
    state.set_phase("ES")
    state.decide("reject")
    state.filter = "reject"
    assert state.queue == [3, 7]
    state.jump(0)
    state.next_patient()
    assert state.patient_index == 3
    state.next_patient()
    assert state.patient_index == 7
    state.next_patient()
    assert state.patient_index == 3
    state.jump(3)
    state.set_phase("ES")
    state.decide("accept")
    state.filter = "undecided"
    assert state.queue == [i for i in range(10) if i != 3]  # 7 still has ED undecided
    with pytest.raises(TraitError, match="Filter"):
        state.filter = "rubbish"
    assert "unclassified" in FILTERS


def test_progress_counts_patients_and_phases(root: Path) -> None:
    """Progress counts patients with both phases decided, and decided phases."""
    state = make_state(root)
    state.decide("accept")
    assert (state.n_decided, state.n_phases_decided) == (0, 1)
    state.toggle_phase()
    state.decide("finetune")
    assert (state.n_decided, state.n_phases_decided) == (1, 2)


def test_patient_move_prefetches_neighbours(root: Path) -> None:
    """After a move the next and previous patients (and the other phase) are prefetched."""
    state = make_state(root)
    calls = []
    real = state.cache.prefetch
    state.cache.prefetch = lambda d, phases=("ED", "ES"), layout=None: (  # type: ignore[method-assign]
        calls.append((Path(d).name, tuple(phases))),
        real(d, phases, layout),
    )
    state.jump(4)
    assert state.patient.endswith("demo005")
    assert state.prefetcher.wait()  # asked from the prefetch thread (layout detection touches the disk)
    assert ("demo006", ("ED", "ES")) in calls
    assert ("demo004", ("ED", "ES")) in calls
    assert ("demo005", ("ES",)) in calls


def test_registered_order_drives_navigation(root: Path) -> None:
    """A registered queue order (e.g. most suspicious first) decides what "next" means."""
    state = make_state(root)
    state.register_order("reverse", lambda s: list(reversed(range(len(s.patients)))))
    state.order = "reverse"
    assert state.queue[0] == 9
    state.jump(5)
    state.next_patient()
    assert state.patient_index == 4
    with pytest.raises(TraitError, match="Order"):
        state.order = "unknown"


def test_remembers_dataset_and_patient(root: Path) -> None:
    """A new session reopens the dataset and patient the reviewer left."""
    QCStore(root, USER).create("b.json", [])
    state = ReviewState(root=root, user=USER)
    state.open_dataset("demo.json")
    state.jump(6)
    again = ReviewState(root=root, user=USER)
    assert again.dataset == "demo.json" and again.patient_index == 6
    assert QCStore(root, USER).datasets() == ["b.json", "demo.json"]
    folder = QCStore(root, USER).folder
    os.chmod(folder, 0o700)  # a reviewer's private folder: the session file is private too
    (folder / SESSION_FILE).unlink()
    again.jump(2)
    assert stat.S_IMODE((folder / SESSION_FILE).stat().st_mode) == 0o600


def test_labels_of_patient_list(root: Path) -> None:
    """The patient list line shows the name and both phases' decisions."""
    state = make_state(root)
    state.decide("accept")
    assert state.patient_label(0) == "demo001  ·  ED accept  ·  ES —"
    assert state.decisions_of(state.patient) == {"ED": "accept", "ES": ""}


def test_queue_helpers_are_pure() -> None:
    """Queue order is completed and de-duplicated; neighbours wrap and work from outside the queue."""
    from cmrqc_widgets.widgets import queue

    assert queue.complete_order([3, 3, 9, 1], 4) == [3, 1, 0, 2]
    order = [0, 1, 2, 3, 4]
    assert queue.neighbour([1, 3], order, 2, +1) == 3
    assert queue.neighbour([1, 3], order, 2, -1) == 1
    assert queue.neighbour([1, 3], order, 3, +1) == 1
    assert queue.neighbour([1, 3], order, 1, -1) == 3
    assert queue.neighbour([], order, 1, +1) is None
    assert queue.patient_name("/data/ukbb/1000213") == "1000213"


def test_statistics_follow_saves_like_the_store(root: Path) -> None:
    """Counts kept one save at a time match the store's own statistics."""
    state = make_state(root)
    for index, decision in ((0, "accept"), (3, "reject"), (3, "finetune"), (5, None), (0, "unclassified")):
        state.jump(index)
        state.decide(decision)
        state.toggle_phase()
        state.decide("accept")
    assert state.statistics().counts == state.dataset_obj.statistics().counts
    assert state.statistics().percentages == state.dataset_obj.statistics().percentages
    assert (state.n_decided, state.n_phases_decided) == (2, 5)


def test_suspicion_order_and_flagged_filter_without_widgets(root: Path) -> None:
    """The state alone ranks the broken demo cases first and filters to them once measured."""
    state = make_state(root)
    assert state.triage.wait()
    assert state.triage.ready and state.triage.done == state.triage.total == 10
    state.order = "suspicion"
    first = {Path(state.patients[i]).name for i in state.queue[:5]}
    assert first == set(DEMO_BROKEN)
    state.filter = "flagged"
    assert {Path(state.patients[i]).name for i in state.queue} == set(DEMO_BROKEN)
    state.jump_to("demo009")
    assert state.triage.wait() and "cannot read ES" in " ".join(state.triage.current.failed)
    state.close()


def test_case_cache_sized_to_the_cases_within_the_limit(root: Path) -> None:
    """The cache keeps about eight cases, at least 32 MB, never more than cache_mb."""
    from cmrqc_widgets.widgets.current import CASES_KEPT, MIN_CACHE_MB

    state = make_state(root)
    assert state.cache.max_bytes == max(MIN_CACHE_MB * 1e6, CASES_KEPT * state.case.nbytes)
    small = make_state(root, cache_mb=0.5)
    assert small.cache.max_bytes == 500_000
    small.jump(3)
    assert small.cache.nbytes <= 500_000 or len(small.cache) == 1
