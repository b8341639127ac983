"""ReviewWidget driven as a reviewer would, without a browser: clicks, typing, keys, the file on disk."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from synthetic import REVIEWER, on_disk, raw

from cmrqc_widgets.store import QCStore
from cmrqc_widgets.widgets import ReviewState, ReviewWidget, SliceViewer
from cmrqc_widgets.widgets import review as review_module
from cmrqc_widgets.widgets import volume3d as volume3d_module
from cmrqc_widgets.widgets.panels import PAGE_SIZE
from cmrqc_widgets.widgets.state import MIN_CACHE_MB
from cmrqc_widgets.widgets.workflow import SESSION_SHOWN

USER = REVIEWER


def key(event_key: str, **extra) -> dict:
    """An ipyevents keydown event as the browser sends it (pointer over the images)."""
    event = {
        "event": "keydown",
        "key": event_key,
        "ctrlKey": False,
        "altKey": False,
        "metaKey": False,
        "shiftKey": False,
        "repeat": False,
        "target": {"tagName": "CANVAS", "id": "", "className": ""},
    }
    event.update(extra)
    return event


def test_builds_with_public_parts(widget: ReviewWidget) -> None:
    """The screen exposes its parts and shows the first patient's ED case in the slice viewer."""
    w = widget
    assert isinstance(w.state, ReviewState)
    assert isinstance(w.slice_view, SliceViewer)
    for name in (
        "accept_button",
        "reject_button",
        "finetune_button",
        "unclassified_button",
        "comment",
        "prev_patient_button",
        "next_patient_button",
        "phase_toggle",
        "slice_slider",
        "dataset_dropdown",
        "volume_view",
        "patient_list",
        "stats_image",
        "log_output",
    ):
        assert getattr(w, name) is not None, name
    assert w.slice_view.message == ""
    assert w.slice_view.shape == list(w.state.case.shape)
    assert w.slice_view.slice_index == w.state.slice == w.slice_slider.value - 1  # the slider counts from 1
    assert w.slice_slider.max == w.state.n_slices
    assert w.dataset_dropdown.value == "demo.json"
    assert w.phase_toggle.value == "ED"
    assert bytes(w.stats_image.value).startswith(b"<svg") and w.stats_image.format == "svg+xml"
    assert "A accept" in w.help.value


def test_click_reject_saves_and_styles(widget: ReviewWidget, root: Path) -> None:
    """Clicking reject saves it at once; the button, list, stats and saved line show it."""
    w = widget
    renders = w.stats.n_renders
    before_png = w.stats_image.value
    w.reject_button.click()
    assert on_disk(w)[w.state.patient]["ED_Comments"] == "reject:"
    assert w.reject_button.button_style == "danger"
    assert w.accept_button.button_style == ""
    assert "ED reject" in w.patient_list.label
    assert "saved " in w.decision_bar.saved_label.value
    assert w.stats.n_renders == renders + 1
    assert w.stats_image.value != before_png
    assert "Download JSON" in w.stats.downloads.value and "data:text/csv;base64," in w.stats.downloads.value
    w.accept_button.click()
    assert on_disk(w)[w.state.patient]["ED_Comments"] == "accept:"
    assert (w.accept_button.button_style, w.reject_button.button_style) == ("success", "")


def test_typed_comment_survives_patient_switch(widget: ReviewWidget, root: Path) -> None:
    """A comment typed then left by moving on is on disk, and back on screen when returning."""
    w = widget
    first = w.state.patient
    w.reject_button.click()
    w.comment.value = "LV leaks into the atrium"
    w.next_patient_button.click()
    assert on_disk(w)[first]["ED_Comments"] == "reject:LV leaks into the atrium"
    assert w.comment.value == ""
    w.prev_patient_button.click()
    assert w.state.patient == first
    assert w.comment.value == "LV leaks into the atrium"
    assert w.reject_button.button_style == "danger"


def test_navigation_wraps_both_ends(widget: ReviewWidget) -> None:
    """Previous from the first patient goes to the last, next from the last to the first."""
    w = widget
    w.prev_patient_button.click()
    assert w.state.patient_index == 9 and w.state.patient.endswith("demo010")
    assert w.patient_list.value == 9
    w.next_patient_button.click()
    assert w.state.patient_index == 0


def test_patient_list_pick_jumps(widget: ReviewWidget) -> None:
    """Picking a patient in the list opens it; the list shows both phases' decisions."""
    w = widget
    w.patient_list.value = 5
    assert w.state.patient_index == 5
    assert w.patient_list.label.startswith("demo006")
    assert "ED —" in w.patient_list.label and "ES —" in w.patient_list.label


def test_phase_toggle_and_slice_slider(widget: ReviewWidget) -> None:
    """The phase switch and the slice slider drive the state and the slice viewer."""
    w = widget
    ed_case = w.state.case
    w.phase_toggle.value = "ES"
    assert w.state.phase == "ES" and w.state.case is not ed_case
    w.slice_slider.value = 2  # the slider counts from 1, as the caption "slice 2 / n"
    assert w.state.slice == 1 and w.slice_view.slice_index == 1
    w.slice_controls.next_slice_button.click()
    assert w.slice_view.slice_index == 2
    w.slice_controls.view_toggle.value = "hla"
    assert w.slice_view.view == "hla" and w.state.n_slices == w.slice_view.n_slices


def test_display_controls_reach_the_viewer(widget: ReviewWidget) -> None:
    """Overlay, transparency, zoom, window and structure show/hide reach the slice viewer."""
    w = widget
    d = w.display_controls
    d.overlay_checkbox.value = False
    d.transparency_slider.value = 25  # percent
    d.zoom_slider.value = 200
    d.window_slider.value = (10.0, 100.0)
    d.structure_checkboxes["RV"].value = False
    v = w.slice_view
    assert v.overlay is False
    assert v.alpha == pytest.approx(0.75)
    assert v.zoom == pytest.approx(2.0)
    assert v.window == [10.0, 100.0]
    assert v.visible == ["LV", "MYO"]
    d.reset_window_button.click()
    assert v.window == v.default_window


def test_keys_decide_navigate_and_play(widget: ReviewWidget, root: Path) -> None:
    """Keys (decide-and-advance off): R rejects, arrows move slice and patient, E/S phase, space plays, J."""
    w = widget
    w.state.advance = False
    first = w.state.patient
    assert w.handle_key(key("r")) is True
    assert on_disk(w)[first]["ED_Comments"] == "reject:"
    start = w.state.slice
    w.handle_key(key("ArrowRight"))
    assert w.slice_view.slice_index == start + 1
    w.handle_key(key("ArrowLeft"))
    assert w.state.slice == start
    w.handle_key(key("s"))
    assert w.state.phase == "ES"
    w.handle_key(key("A"))  # capital letter (caps lock) works too
    assert on_disk(w)[first]["ES_Comments"] == "accept:"
    w.handle_key(key("e"))
    assert w.state.phase == "ED"
    w.handle_key(key("ArrowDown"))
    assert w.state.patient_index == 1
    w.handle_key(key("ArrowUp"))
    w.handle_key(key("p"))
    assert w.state.patient_index == 9
    w.handle_key(key("n"))
    assert w.state.patient_index == 0
    w.handle_key(key(" "))
    assert w.slice_view.playing is True
    w.handle_key(key(" "))
    assert w.slice_view.playing is False
    w.handle_key(key("j"))
    assert (w.state.patient_index, w.state.phase) == (1, "ED")
    w.handle_key(key("f"))
    w.handle_key(key("u"))
    assert on_disk(w)[w.state.patient]["ED_Comments"] == "unclassified:"


def test_keys_ignored_while_typing(widget: ReviewWidget, root: Path) -> None:
    """Keys typed in the comment box (or with Ctrl, or key-up, or held) never act."""
    w = widget
    before = (root / "users" / USER / "demo.json").read_bytes()
    here = (w.state.patient_index, w.state.phase, w.state.slice)
    typing = {"tagName": "TEXTAREA", "id": "", "className": "widget-textarea"}
    for k in ("a", "r", "f", "u", "n", "p", "e", "s", "j", " ", "ArrowLeft", "ArrowDown"):
        assert w.handle_key(key(k, target=typing)) is False
    assert w.handle_key(key("r", ctrlKey=True)) is False
    assert w.handle_key(key("r", event="keyup")) is False
    assert w.handle_key(key("a", repeat=True)) is False
    assert w.handle_key(key("x")) is False
    assert (root / "users" / USER / "demo.json").read_bytes() == before
    assert (w.state.patient_index, w.state.phase, w.state.slice) == here


def test_page_messages_reach_the_state(widget: ReviewWidget) -> None:
    """The page's key bridge: a key acts, a commit saves the typed text, a ping gets a pong."""
    w = widget
    sent = []
    w.hotkeys.send = sent.append
    w.hotkeys._receive(w.hotkeys, {"type": "ping"}, [])
    assert sent == [{"type": "pong"}]
    w.hotkeys._receive(w.hotkeys, {"type": "commit", "text": "apex ok", "case": w.hotkeys.case_key}, [])
    assert on_disk(w)[w.state.patient]["ED_Comments"] == ":apex ok"
    w.hotkeys._receive(w.hotkeys, {"type": "key", "event": key("s")}, [])
    assert w.state.phase == "ES"
    assert w.hotkeys.case_key.endswith("|ES")


def test_dataset_switch_saves_draft_and_opens(widget: ReviewWidget, root: Path) -> None:
    """Picking another dataset saves the pending comment and opens the new file; new files appear."""
    w = widget
    first = w.state.patient
    w.state.set_comment("draft")  # typed, focus not yet left
    QCStore(root, USER).create("second.json", [first])
    w.stats.refresh_button.click()
    assert list(w.dataset_dropdown.options) == ["demo.json", "second.json"]
    w.dataset_dropdown.value = "second.json"
    assert on_disk(w)[first]["ED_Comments"] == ":draft"
    assert w.state.dataset == "second.json" and w.state.n_total == 1
    assert "second.json" in w.title.value
    w.reject_button.click()
    assert on_disk(w, "second.json")[first]["ED_Comments"] == "reject:"
    assert on_disk(w)[first]["ED_Comments"] == ":draft"


def test_broken_case_shows_sentence_and_is_decidable(widget: ReviewWidget, root: Path) -> None:
    """A corrupt demo case shows its sentence in the panels; it can be decided and commented."""
    w = widget
    w.state.jump_to("demo009")
    w.phase_toggle.value = "ES"
    assert "lvsa_SR_ES.nii.gz" in w.slice_view.message
    assert "lvsa_SR_ES.nii.gz" in w.banner.value
    assert "Error" in w.case_info.html.value
    w.reject_button.click()
    w.comment.value = "image unreadable"
    w.next_patient_button.click()
    assert on_disk(w)[w.state.patients[8]]["ES_Comments"] == "reject:image unreadable"
    assert w.slice_view.message == "" and w.banner.value == ""


def test_empty_dataset_shows_no_patients(tmp_path: Path) -> None:
    """An empty dataset shows "no patients"; every button works without a crash."""
    QCStore(tmp_path, USER).create("empty.json", [])
    w = ReviewWidget(root=tmp_path, user=USER)
    assert "No patients" in w.slice_view.message
    for button in (w.next_patient_button, w.prev_patient_button, w.accept_button, w.next_undecided_button):
        button.click()
    w.handle_key(key("ArrowRight"))
    assert raw(tmp_path / "users" / USER, "empty.json") == {}
    assert w.patient_list.options == ()
    w.close()


def test_corrupt_dataset_never_written(tmp_path: Path) -> None:
    """A corrupt dataset shows its error; clicking everything leaves its bytes unchanged."""
    folder = tmp_path / "users" / USER
    folder.mkdir(parents=True)
    path = folder / "bad.json"
    path.write_bytes(b"[1, 2")
    w = ReviewWidget(root=tmp_path, user=USER)
    assert "bad.json" in w.slice_view.message and "bad.json" in w.banner.value
    for button in (w.reject_button, w.next_patient_button, w.prev_patient_button, w.unclassified_button):
        button.click()
    w.comment.value = "typed"
    w.handle_key(key("a"))
    assert path.read_bytes() == b"[1, 2"
    w.close()


def test_no_datasets_message(tmp_path: Path) -> None:
    """With no dataset files at all, the screen says so and how to create one."""
    w = ReviewWidget(root=tmp_path, user=USER)
    assert "No datasets" in w.slice_view.message
    assert w.dataset_dropdown.options == ()
    w.close()


def test_next_undecided_filter_and_progress(widget: ReviewWidget) -> None:
    """Next undecided, the filter dropdown and the progress bar follow the decisions."""
    w = widget
    w.accept_button.click()
    w.next_undecided_button.click()
    assert (w.state.patient_index, w.state.phase) == (0, "ES")
    w.finetune_button.click()
    assert w.progress_bar.value == 1 and w.progress_bar.max == 10
    assert "1 of 10 decided" in w.navigation.progress_label.value
    w.filter_dropdown.value = "finetune"
    assert [value for _, value in w.patient_list.options] == [0]
    w.filter_dropdown.value = "undecided"
    assert [value for _, value in w.patient_list.options] == [0, *range(1, 10)]  # current kept visible
    w.next_patient_button.click()
    assert w.state.patient_index == 1
    assert [value for _, value in w.patient_list.options] == list(range(1, 10))


def test_3d_collapsed_costs_nothing_and_ignores_slices(widget: ReviewWidget, monkeypatch) -> None:
    """Collapsed, no points are computed; expanded, points change on patient moves, never on slices."""
    calls = []
    real = volume3d_module.case_points

    def counting(case, cap=50_000):
        calls.append(case)
        return real(case, cap=cap)

    monkeypatch.setattr(volume3d_module, "case_points", counting)
    w = widget
    view = w.volume_view
    w.next_patient_button.click()
    w.prev_patient_button.click()
    w.wait_idle()
    assert calls == [] and view.figure is None and view.n_point_updates == 0
    w.volume_view.toggle.value = True
    assert view.n_point_updates == 1 and view.figure is not None
    assert w.state.show_3d is True
    scatter = view.scatters["LV"]
    assert scatter.geo == "box" and len(scatter.x) > 0
    w.wait_idle()
    extracted = len(calls)
    for _ in range(3):
        w.slice_controls.next_slice_button.click()
        w.handle_key(key("ArrowLeft"))
    w.slice_slider.value = 1
    w.wait_idle()
    assert len(calls) == extracted and view.n_point_updates == 1
    assert view.scatters["LV"] is scatter and scatter in view.figure.scatters
    w.next_patient_button.click()
    assert view.n_point_updates == 2
    scatter = view.scatters["LV"]
    w.display_controls.structure_checkboxes["LV"].value = False
    assert scatter not in view.figure.scatters and view.n_point_updates == 2
    w.display_controls.structure_checkboxes["LV"].value = True
    assert scatter in view.figure.scatters
    w.volume_view.toggle.value = False
    w.wait_idle()
    extracted = len(calls)
    w.next_patient_button.click()
    w.wait_idle()
    assert view.n_point_updates == 2 and len(calls) == extracted  # collapsed: not even prefetched
    w.state.jump_to("demo009")
    w.state.set_phase("ES")
    w.volume_view.toggle.value = True
    assert view.figure.scatters == [view._placeholder]
    assert "lvsa_SR_ES" in view.status.value
    assert view.n_point_updates == 2


def test_3d_never_shows_an_empty_scatter(root: Path) -> None:
    """A structure without voxels is left out of the figure (empty scatters break ipyvolume 0.6.3)."""
    w = ReviewWidget(root=root, user=USER, show_3d=True)
    w.state.jump_to("demo008")
    w.state.set_phase("ES")  # empty segmentation: one invisible point, never an empty list
    (placeholder,) = w.volume_view.figure.scatters
    assert len(placeholder.x) == 1 and placeholder.size == 0
    w.state.set_phase("ED")
    assert [s.description for s in w.volume_view.figure.scatters] == ["LV", "RV", "MYO"]
    assert all(len(s.x) > 0 for s in w.volume_view.figure.scatters)
    w.close()


def test_3d_points_capped_and_physical(root: Path) -> None:
    """The 3D panel draws at most the cap, coloured per structure, in millimetres."""
    w = ReviewWidget(root=root, user=USER, show_3d=True, points_cap=500)
    drawn = sum(len(s.x) for s in w.volume_view.scatters.values())
    assert 0 < drawn <= 500
    lv = w.volume_view.scatters["LV"]
    assert lv.color == "#ff0000"
    extent = max(lv.z) - min(lv.z)
    assert extent > 8.0  # spans several 8 mm slices, not slice indices
    w.close()


def test_patient_switch_is_one_batch(widget: ReviewWidget, monkeypatch) -> None:
    """During a patient switch every panel's widget is holding its sync (one batch to the browser)."""
    w = widget
    seen = []
    real = w.slice_view.show_case

    def spy(case, slice_index=None, **kwargs):
        seen.append([widget._holding_sync for widget in w._sync_widgets()])
        return real(case, slice_index, **kwargs)

    monkeypatch.setattr(w.slice_view, "show_case", spy)
    w.next_patient_button.click()
    w.handle_key(key("s"))
    assert len(seen) == 2
    assert all(all(flags) for flags in seen)


def test_callback_errors_go_to_the_log(widget: ReviewWidget, monkeypatch) -> None:
    """A failing save is told to the reviewer, not swallowed."""
    w = widget

    def fail(*args, **kwargs):
        from cmrqc_widgets.errors import DatasetError

        raise DatasetError("Dataset file demo.json cannot be written (disk full).")

    monkeypatch.setattr(w.state.dataset_obj, "save", fail)
    w.reject_button.click()
    assert "disk full" in w.decision_bar.saved_label.value
    assert w.reject_button.button_style == ""


def test_bytes_per_patient_move(widget: ReviewWidget) -> None:
    """One patient move sends the volume once, far below the old app's 1.5 MB per move."""
    w = widget
    w.next_patient_button.click()
    assert 0 < w.slice_view.volume_nbytes() < 1_500_000


def test_prefetch_packs_the_neighbour(widget: ReviewWidget, monkeypatch) -> None:
    """The next patient's volume is packed in the background; the switch only sends it."""
    w = widget
    assert w.state.prefetcher.wait(timeout=10)
    assert w.state.prefetcher.n_prepared["pack"] >= 2  # the next patient and the other phase
    packed_on = []
    real = review_module.pack_case

    def spy(case):
        packed_on.append(threading.current_thread().name)
        return real(case)

    monkeypatch.setattr(review_module, "pack_case", spy)
    for _ in range(3):
        w.next_patient_button.click()
        assert w.slice_view.shape == list(w.state.case.shape)
        assert w.state.prefetcher.wait(timeout=10)
    w.phase_toggle.value = "ES"
    assert packed_on and set(packed_on) == {"cmrqc-prepare"}  # never on the reviewer's thread


def test_slice_moves_touch_nothing_in_the_kernel(widget: ReviewWidget, monkeypatch) -> None:
    """Slider, buttons, keys and play move the slice: no packing, no 3D, no pie, no strip, no info."""
    w = widget
    w.volume_view.toggle.value = True
    assert w.wait_idle()
    calls = []
    monkeypatch.setattr(review_module, "pack_case", lambda case: calls.append("pack"))
    monkeypatch.setattr(w.volume_view, "show_case", lambda *a, **k: calls.append("3d"))
    monkeypatch.setattr(w.case_info, "refresh", lambda *a, **k: calls.append("info"))
    renders = (w.stats.n_renders, w.metrics_strip.n_renders, w.volume_view.n_point_updates)
    image = w.slice_view.image
    w.slice_slider.value = 2
    for _ in range(3):
        w.slice_controls.next_slice_button.click()
        w.handle_key(key("ArrowLeft"))
    w.handle_key(key(" "))
    w.handle_key(key(" "))
    assert w.slice_view.slice_index == w.state.slice == 1
    assert calls == []
    assert (w.stats.n_renders, w.metrics_strip.n_renders, w.volume_view.n_point_updates) == renders
    assert w.slice_view.image is image  # the volume is not sent again


def test_pie_redrawn_only_when_counts_change(widget: ReviewWidget) -> None:
    """A decision redraws the pie; a comment, a slice or a patient move does not."""
    w = widget
    renders = w.stats.n_renders
    w.comment.value = "only a comment"
    w.slice_slider.value = 3
    w.next_patient_button.click()
    assert w.stats.n_renders == renders
    w.accept_button.click()
    assert w.stats.n_renders == renders + 1
    w.accept_button.click()  # the same decision again: same counts
    assert w.stats.n_renders == renders + 1


def test_patient_list_options_kept_on_moves(widget: ReviewWidget) -> None:
    """Moving between patients changes the list's selection only, never rebuilds its options."""
    w = widget
    options = w.patient_list.options
    for _ in range(3):
        w.next_patient_button.click()
    assert w.patient_list.options is options
    assert w.patient_list.value == w.state.patient_index == 3
    w.reject_button.click()
    assert "ED reject" in w.patient_list.label


def test_large_dataset_save_sends_one_page(tmp_path: Path, monkeypatch) -> None:
    """At 10,000 patients the list shows one page, and a save re-sends that page only, no downloads."""
    store = QCStore(tmp_path, USER)
    store.create("big.json", [f"/data/cohort/{i:05d}" for i in range(10_000)])
    w = ReviewWidget(root=tmp_path, user=USER, dataset="big.json")
    assert len(w.patient_list.options) == PAGE_SIZE
    assert "1-100 of 10,000" in w.navigation.page_label.value
    w.navigation.turn_page(+1)
    assert w.patient_list.options[0][1] == PAGE_SIZE
    sent: list[tuple[str, int]] = []
    real = type(w.patient_list)._send

    def spy(self, msg, buffers=None):
        sent.append((type(self).__name__, len(json.dumps(msg, default=str))))
        return real(self, msg, buffers)

    monkeypatch.setattr(type(w.patient_list), "_send", spy)
    w.state.jump(250)
    w.reject_button.click()
    assert w.patient_list.value == 250 and "ED reject" in w.patient_list.label
    assert w.patient_list.options[0][1] == 200
    assert sum(n for _, n in sent) < 40_000  # one page of labels, not 10,000
    assert "prepared on request" in w.stats.downloads.value
    w.stats.prepare_button.click()
    assert "Download CSV" in w.stats.downloads.value
    w.close()


def test_nothing_piles_up_per_patient(widget: ReviewWidget) -> None:
    """Reviewing many patients with the 3D panel open leaves no widgets or cached cases behind."""
    from ipywidgets.widgets.widget import _instances

    w = widget
    w.volume_view.toggle.value = True
    for _ in range(SESSION_SHOWN):  # the session list makes its rows once, up to SESSION_SHOWN
        w.next_patient_button.click()
        w.accept_button.click()
    assert w.wait_idle()
    open_widgets = len(_instances)
    for _ in range(12):
        w.next_patient_button.click()
        w.accept_button.click()
    assert w.wait_idle()
    assert len(_instances) == open_widgets  # old 3D scatters and their materials closed
    assert w.state.cache.nbytes <= w.state.cache.max_bytes == MIN_CACHE_MB * 1e6  # tiny cases: the floor


def test_gc_freeze_only_in_a_voila_kernel(root, monkeypatch):
    """A researcher's notebook kernel is never frozen; a Voilà dashboard kernel is (smoother switches)."""
    import gc

    from cmrqc_widgets import ReviewWidget

    frozen_before = gc.get_freeze_count()
    monkeypatch.delenv("VOILA_KERNEL_ID", raising=False)
    ReviewWidget(root=root, user=USER).close()
    assert gc.get_freeze_count() == frozen_before
    monkeypatch.setenv("VOILA_KERNEL_ID", "test-kernel")
    ReviewWidget(root=root, user=USER).close()
    assert gc.get_freeze_count() > frozen_before
    gc.unfreeze()
