"""A reviewer's day without a browser: decide-and-advance, accept both, undo, revert, settings kept."""

from __future__ import annotations

from pathlib import Path

import pytest
from synthetic import REVIEWER, on_disk

from cmrqc_widgets.widgets import ReviewWidget
from cmrqc_widgets.widgets.keys import action_for


def key(event_key: str, **extra) -> dict:
    """A keydown event as the page forwards it (focus on the page, not in a text field)."""
    return {"event": "keydown", "key": event_key, "target": {"tagName": "BODY"}, **extra}


def test_decision_key_advances_to_next_undecided(widget: ReviewWidget) -> None:
    """A: ED saved, then ES of the same patient; A again: saved, then the next patient's ED."""
    w = widget
    first = w.state.patient
    w.handle_key(key("a"))
    assert (w.state.patient, w.state.phase) == (first, "ES")
    w.handle_key(key("a"))
    assert w.state.patient_index == 1 and w.state.phase == "ED"
    assert on_disk(w)[first] == {"ED_Comments": "accept:", "ES_Comments": "accept:"}


def test_whole_cohort_costs_one_key_per_phase(widget: ReviewWidget) -> None:
    """Every phase of the cohort decided by pressing A alone: exactly two keys per patient."""
    w = widget
    presses = 0
    while w.state.n_decided < w.state.n_total:
        w.handle_key(key("a"))
        presses += 1
        assert presses <= 2 * w.state.n_total
    assert presses == 2 * w.state.n_total
    assert all(v == {"ED_Comments": "accept:", "ES_Comments": "accept:"} for v in on_disk(w).values())


def test_shift_a_accepts_both_phases_and_moves_on(widget: ReviewWidget) -> None:
    """Shift+A accepts ED and ES (keeping the ES comment) and goes to the next patient."""
    w = widget
    first = w.state.patient
    w.state.set_phase("ES")
    w.comment.value = "thin apex"
    w.state.set_phase("ED")
    w.handle_key(key("A", shiftKey=True))
    assert on_disk(w)[first] == {"ED_Comments": "accept:", "ES_Comments": "accept:thin apex"}
    assert w.state.patient_index == 1 and w.state.phase == "ED"


def test_decisions_without_advance_stay_put(widget: ReviewWidget) -> None:
    """With decide-and-advance off, a decision key saves and stays on the case."""
    w = widget
    w.state.advance = False
    w.handle_key(key("r"))
    assert (w.state.patient_index, w.state.phase, w.state.decision) == (0, "ED", "reject")


def test_undo_goes_back_and_keeps_history(widget: ReviewWidget) -> None:
    """Z after R-and-advance: back on the case, decision as before, comment kept, journal has both."""
    w = widget
    first = w.state.patient
    w.comment.value = "septum"
    w.handle_key(key("r"))
    assert w.state.phase == "ES"
    w.handle_key(key("z", ctrlKey=True))
    assert (w.state.patient, w.state.phase, w.state.decision) == (first, "ED", "")
    assert on_disk(w)[first]["ED_Comments"] == ":septum"
    history = [(h.previous.decision, h.new.decision) for h in w.state.dataset_obj.history(first)]
    assert history[-2:] == [(None, "reject"), ("reject", None)]
    assert "Undone" in w.decision_bar.saved_label.value
    w.handle_key(key("z"))  # nothing left to undo
    assert "Nothing to undo" in w.state.notice


def test_revert_button_of_the_session_list(widget: ReviewWidget) -> None:
    """The session list shows the last decisions; its revert button puts back the older one."""
    w = widget
    assert w.history.session_rows == []  # made when decisions need them, not on the first screen
    w.handle_key(key("f"))
    w.handle_key(key("a"))
    rows = w.history.session_rows
    assert "accept" in rows[0].children[0].value and "finetune" in rows[1].children[0].value
    rows[1].children[1].click()  # revert the fine-tune (the older one)
    assert (w.state.patient_index, w.state.phase, w.state.decision) == (0, "ED", "")
    assert on_disk(w)[w.state.patient]["ES_Comments"] == "accept:"


def test_case_history_shows_who_what_when(widget: ReviewWidget) -> None:
    """The case history lists each save of this patient: reviewer, time, before → after, seconds."""
    w = widget
    w.state.advance = False
    w.reject_button.click()
    w.accept_button.click()
    text = w.history.case_html.value
    assert REVIEWER in text and "reject → accept" in text and "— → reject" in text


def test_commit_for_a_case_left_behind_is_not_written_here(widget: ReviewWidget) -> None:
    """Text the page typed for patient 1 never lands on patient 2 (the screen had moved on)."""
    w = widget
    old_key = w.state.case_key
    w.state.next_patient()
    assert w.state.commit_typed("for the first patient", old_key) is False
    assert on_disk(w)[w.state.patient]["ED_Comments"] == ""


def test_keys_from_lists_and_checkboxes_still_act(widget: ReviewWidget) -> None:
    """Focus on the patient list or a checkbox does not swallow shortcuts; a text box does."""
    assert action_for(key("n", target={"tagName": "SELECT"})) == ("next_patient", ())
    assert action_for(key("n", target={"tagName": "INPUT", "type": "checkbox"})) == ("next_patient", ())
    assert action_for(key("n", target={"tagName": "INPUT", "type": "number"})) is None
    assert action_for(key("n", target={"tagName": "DIV", "className": "widget-readout"})) is None
    assert action_for(key("z", ctrlKey=True, repeat=True)) is None


def test_display_settings_remembered_per_reviewer(root: Path) -> None:
    """Transparency, zoom, overlay, the view mode and decide-and-advance come back in the next session."""
    w = ReviewWidget(root=root, user=REVIEWER)
    w.display_controls.transparency_slider.value = 25
    w.display_controls.zoom_slider.value = 150
    w.state.advance = False
    w.handle_key(key("o"))
    w.handle_key(key("v"))
    w.close()
    again = ReviewWidget(root=root, user=REVIEWER)
    assert again.display_controls.transparency_slider.value == 25
    assert again.state.zoom == 1.5 and again.state.overlay is False and again.state.advance is False
    assert again.state.three_views is True and again.slice_view.three_views is True
    again.handle_key(key("m"))  # the mosaic replaces the three views, and is what comes back
    again.close()
    third = ReviewWidget(root=root, user=REVIEWER)
    assert (third.state.mosaic, third.state.three_views) == (True, False)
    third.close()


def test_3d_follows_2d_and_skips_cases_passed_over(widget: ReviewWidget) -> None:
    """With 3D open, a switch sends the 2D volume at once; 3D comes after, only for the case still shown."""
    w = widget
    queued = []
    w._schedule = lambda function, delay: queued.append(function)  # the kernel's event loop, by hand
    w.volume_view.toggle.value = True
    drawn = w.volume_view.n_point_updates
    first_image = w.slice_view.image
    w.next_patient_button.click()
    w.next_patient_button.click()
    assert w.slice_view.image != first_image and w.state.patient_index == 2  # 2D is there
    assert w.volume_view.n_point_updates == drawn  # 3D not yet touched
    for function in queued:
        function()
    assert w.volume_view.n_point_updates == drawn + 1  # the passed-over patient was skipped
    assert w.volume_view._drawn is w.state.case


def test_closed_socket_traceback_dropped_at_shutdown() -> None:
    """The kernel log filter drops only the closed-socket ZMQ error a preheated kernel logs at stop."""
    import logging

    import zmq

    from cmrqc_widgets.widgets.kernel import _ClosedSocketFilter

    def record(error: BaseException) -> logging.LogRecord:
        return logging.LogRecord(
            "IPKernelApp",
            logging.ERROR,
            "",
            0,
            "Exception in message handler:",
            (),
            (type(error), error, None),
        )

    keep = _ClosedSocketFilter()
    assert keep.filter(record(zmq.ZMQError(zmq.ENOTSOCK))) is False
    assert keep.filter(record(zmq.ZMQError(zmq.EAGAIN))) is True
    assert keep.filter(record(ValueError("a real bug"))) is True


def test_window_presets_and_invert(widget: ReviewWidget) -> None:
    """Presets set the window about the case's own centre; I inverts; Auto restores the case's window."""
    w = widget
    low, high = w.slice_view.default_window
    w.display_controls.preset_dropdown.value = "contrast"
    a, b = w.slice_view.window
    assert b - a == pytest.approx(0.6 * (high - low), abs=1) and (a + b) / 2 == pytest.approx(
        (low + high) / 2, abs=1
    )
    w.display_controls.preset_dropdown.value = "wide"
    assert w.slice_view.window[1] - w.slice_view.window[0] > high - low
    w.handle_key(key("i"))
    assert w.slice_view.invert is True and w.display_controls.invert_checkbox.value is True
    w.display_controls.reset_window_button.click()
    assert w.slice_view.window == w.slice_view.default_window


def test_whole_heart_modes_by_key_and_checkbox(widget: ReviewWidget) -> None:
    """M and V switch the mosaic and the three views on the viewer; turning one on turns the other off."""
    w = widget
    assert w.handle_key(key("m"))
    assert w.slice_view.mosaic and not w.slice_view.three_views
    assert w.handle_key(key("v"))
    assert w.slice_view.three_views and not w.slice_view.mosaic
    assert not w.display_controls.mosaic_checkbox.value and w.display_controls.three_views_checkbox.value
    w.display_controls.mosaic_checkbox.value = True
    assert w.slice_view.mosaic and not w.slice_view.three_views
    w.handle_key(key("m"))
    assert not w.slice_view.mosaic and not w.slice_view.three_views
    assert any(keys == "V" for keys, _ in w.hotkeys.help_rows)  # listed in the ? overlay
