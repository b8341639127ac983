"""A crafted browser sets any synced trait, "clicks" disabled buttons: nothing outside the rules is written.

ipywidgets applies whatever a client sends (``set_state``, a ``click`` message) without looking at
``disabled``. These tests send such messages to a real review screen, as a crafted client would,
and then look at every file under the data root.
"""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path

import pytest
from synthetic import REVIEWER

from cmrqc_widgets.widgets import ReviewWidget


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` (and beside it) with its content hash."""
    files = {}
    for path in sorted(root.parent.rglob("*")):
        # The lock files and the reviewer's "where I was" file (.cmrqc-session) move with navigation.
        if path.is_file() and not path.name.endswith((".lock", ".cmrqc-session")):
            files[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files


def click(button) -> None:
    """A click message as the browser sends it, whether or not the button is disabled there."""
    button._handle_button_msg(None, {"event": "click"}, [])


def send(widget, **state) -> None:
    """A comm ``update`` message as a crafted client sends it; refusals are swallowed as ipywidgets does."""
    with contextlib.suppress(Exception):  # ipywidgets logs and drops an invalid update
        widget.set_state(state)


@pytest.fixture
def bob(root: Path) -> Path:
    """A second reviewer, bob, with a dataset file of his own."""
    folder = root / "users" / "bob"
    folder.mkdir(parents=True)
    (folder / "secret.json").write_text((root / "users" / REVIEWER / "demo.json").read_text())
    return folder / "secret.json"


def test_dataset_names_from_the_browser_stay_in_the_reviewers_folder(widget: ReviewWidget, root, bob):
    """Dataset names of other folders, another reviewer's file or nothing: nothing opened or written."""
    before = snapshot(root)
    send(widget.dataset_dropdown, index=99)
    send(widget.dataset_dropdown, index=-1)
    for name in ("../bob/secret.json", "secret.json", str(bob), "/etc/passwd", "..", ""):
        with contextlib.suppress(Exception):
            widget.state.dataset = name  # what a linked dropdown would forward
        opened = widget.state.dataset_obj
        assert opened is None or opened.path.parent == root / "users" / REVIEWER
        click(widget.reject_button)
    mine = str(root / "users" / REVIEWER)
    outside = {k: v for k, v in snapshot(root).items() if not k.startswith(mine)}
    assert outside == {k: v for k, v in before.items() if not k.startswith(mine)}


def test_out_of_range_indexes_and_values_are_refused(widget: ReviewWidget, root):
    """Patient, phase, filter, order, slice and window values outside their ranges change nothing on disk."""
    before = snapshot(root)
    send(widget.patient_list, index=10_000)
    send(widget.patient_list, index=-5)
    send(widget.phase_toggle, index=7)
    send(widget.slice_slider, value=10**9)
    send(widget.navigation.order_dropdown, index=42)
    send(widget.filter_dropdown, index=42)
    for trait, value in (("phase", "XX"), ("patient_index", 10**6), ("decision", "delete-everything")):
        with contextlib.suppress(Exception):
            setattr(widget.state, trait, value)
    assert widget.state.phase in ("ED", "ES")
    assert 0 <= widget.state.patient_index < len(widget.state.patients)
    assert widget.state.decision in ("", "accept", "reject", "finetune", "unclassified")
    assert snapshot(root) == before


def test_disabled_buttons_clicked_by_a_crafted_client_do_nothing_they_should_not(widget: ReviewWidget, root):
    """Clear with no decision, paging past the ends, deciding with no dataset open: nothing written."""
    before = snapshot(root)
    assert widget.decision_bar.clear_button.disabled
    send(widget.decision_bar.clear_button, disabled=False)
    click(widget.decision_bar.clear_button)
    for button in (widget.navigation.prev_page_button, widget.navigation.next_page_button):
        send(button, disabled=False)
        click(button)
    assert snapshot(root) == before
    widget.state.dataset = "missing.json"  # no dataset open: the decision buttons have nothing to act on
    bar = widget.decision_bar
    for button in (widget.accept_button, widget.reject_button, widget.finetune_button, bar.clear_button):
        send(button, disabled=False)
        click(button)
    assert snapshot(root) == before


def test_the_reviewer_is_the_processs_user_never_a_widget_value(root, monkeypatch, bob):
    """Behind the hub the reviewer is JUPYTERHUB_USER; no widget carries a user name that could change it."""
    monkeypatch.setenv("JUPYTERHUB_USER", REVIEWER)
    w = ReviewWidget(root=root)
    try:
        assert w.state.store.user == REVIEWER
        for widget in _all_widgets(w):
            for name, value in widget.get_state().items():
                assert value != "bob", (type(widget).__name__, name)
        click(w.reject_button)
        assert '"reject"' in (root / "users" / REVIEWER / "demo.history.jsonl").read_text()
        assert not list((root / "users" / "bob").glob("demo*"))
    finally:
        w.close()


def test_an_overlong_comment_is_refused_with_one_sentence(widget: ReviewWidget, root):
    """A comment of megabytes from a crafted client is not saved; the reviewer reads why."""
    before = snapshot(root)
    widget.comment.value = "x" * 2_000_000
    click(widget.reject_button)
    assert snapshot(root) == before
    assert "too long" in widget.state.notice


def _all_widgets(root_widget):
    seen, todo = [], [root_widget]
    while todo:
        w = todo.pop()
        if w in seen:
            continue
        seen.append(w)
        todo.extend(getattr(w, "children", ()) or ())
    return seen
