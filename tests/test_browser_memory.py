"""Next patient from the browser's memory (issue 14), kernel side, with a browser played by the test.

The kernel sends volumes as messages keyed by their content and names the one to paint in
``volume_key``; after the browser reports a case painted it sends the neighbours. ``Browser`` below
does what ``slice_viewer.js`` does: keeps the volumes it receives (the last eight), paints the one
named, asks for it when it does not hold it, and reports each paint. The tests look at what it
would paint: always the titled patient's pixels, never a kept volume the kernel did not choose.
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
from synthetic import REVIEWER, write_case
from test_never_wrong_patient import signed, stripes_seen  # noqa: F401  (fixture)

from cmrqc_widgets.render.packing import PackedCase, pack_volume
from cmrqc_widgets.widgets import ReviewWidget
from cmrqc_widgets.widgets.browser_volumes import BROWSER_KEEPS


class Browser:
    """The slice viewer's JavaScript, as far as volumes go (store, want, painted)."""

    def __init__(self, viewer) -> None:
        self.viewer = viewer
        self.kept: OrderedDict[str, tuple[bytes, bytes, list[int]]] = OrderedDict()
        self.received: list[str] = []
        self.wants = 0
        viewer.send = self._receive  # the comm, short-circuited
        # A page opening: it holds nothing yet and asks for the volume named.
        viewer._handle_custom_msg({"type": "want", "key": viewer.volume_key}, [])

    def _receive(self, content, buffers=None) -> None:
        assert content["type"] == "volume"
        self.received.append(content["key"])
        self.kept[content["key"]] = (bytes(buffers[0]), bytes(buffers[1]), list(content["shape"]))
        while len(self.kept) > BROWSER_KEEPS:
            self.kept.popitem(last=False)

    def paint(self) -> np.ndarray:
        """The volume painted for the traits the kernel set (asking for it if needed); reports it."""
        key = self.viewer.volume_key
        if key not in self.kept:
            self.wants += 1
            self.viewer._handle_custom_msg({"type": "want", "key": key}, [])
        image, _, shape = self.kept[key]
        self.kept.move_to_end(key)
        assert shape == list(self.viewer.shape)
        self.viewer._handle_custom_msg({"type": "painted", "key": key}, [])
        return np.frombuffer(zlib.decompress(image), np.uint8).reshape(shape)


def screen(root: Path) -> tuple[ReviewWidget, Browser]:
    w = ReviewWidget(root=root, user=REVIEWER, dataset="cohort.json")
    browser = Browser(w.slice_view)
    browser.paint()
    w.wait_idle()
    return w, browser


def number(patient: str) -> int:
    return int(Path(patient).name[1:])


def test_neighbours_are_sent_only_after_the_case_is_painted(signed) -> None:  # noqa: F811
    """No neighbour travels before the browser reports the current case painted; then all of them."""
    root, _ = signed
    w = ReviewWidget(root=root, user=REVIEWER, dataset="cohort.json")
    browser = Browser(w.slice_view)
    w.wait_idle()
    assert browser.received == [w.slice_view.volume_key]  # the current case only
    browser.paint()
    neighbours = w.state.prefetcher.ready("pack", w.state.neighbours)
    assert len(neighbours) == 5  # the other phase here, next and previous patients' both phases
    assert browser.received[1:] == [p.key for p in neighbours]
    w.close()


def test_next_patient_is_painted_from_memory_with_its_own_pixels(signed) -> None:  # noqa: F811
    """Walking the cohort twice: no switch sends a volume, and each paints the titled patient."""
    root, folders = signed
    w, browser = screen(root)
    for _ in range(2 * len(folders)):
        sent = len(browser.received)
        w.next_patient_button.click()
        assert len(browser.received) == sent  # only the traits naming a kept volume
        assert stripes_seen(browser.paint()) == number(w.state.patient)
        w.wait_idle()
    assert browser.wants == 0
    w.close()


def test_a_changed_file_is_not_shown_from_the_stale_kept_volume(signed) -> None:  # noqa: F811
    """The next patient is kept; its file is rewritten (other bars): the browser paints the new file."""
    root, folders = signed
    w, browser = screen(root)
    following = folders[1]
    stale = next(k for k in browser.kept if k.startswith(f"ED:{following.resolve()}#"))
    write_case(following, shape=(42, 32, 6), affine=np.diag([-1.8, -1.8, 8.0, 1.0]), stripes=4)
    w.state.prefetcher.clear()
    w.state.cache.clear()  # the kernel reads files afresh (as a restarted kernel would)
    w.next_patient_button.click()
    assert w.slice_view.volume_key != stale
    assert w.slice_view.volume_key in browser.received  # sent with the switch
    assert stripes_seen(browser.paint()) == 4
    w.close()


def test_after_the_order_changes_the_new_next_patient_is_painted(signed) -> None:  # noqa: F811
    """p2 is kept as the next patient; a new order puts p3 next: Next paints p3, never the kept p2."""
    root, _ = signed
    w, browser = screen(root)
    p2 = w.state.patient_dir(w.state.patients[1]).resolve()
    assert any(k.startswith(f"ED:{p2}#") for k in browser.kept)
    w.state.register_order("p3 first", lambda state: [0, 2, 1, 3, 4])
    w.order_dropdown.options = w.state.orders()
    w.order_dropdown.value = "p3 first"  # as the reviewer picks it
    w.next_patient_button.click()
    assert Path(w.state.patient).name == "p3"
    assert w.slice_view.volume_key.startswith(f"ED:{w.state.patient_dir().resolve()}#")
    assert stripes_seen(browser.paint()) == 3
    w.close()


def test_want_sends_only_volumes_the_kernel_chose(signed) -> None:  # noqa: F811
    """A page asking for a key gets the current (or an offered) volume, nothing else."""
    root, _ = signed
    w, browser = screen(root)
    sent = len(browser.received)
    w.slice_view._handle_custom_msg({"type": "want", "key": "ED:/etc/passwd#00"}, [])
    w.slice_view._handle_custom_msg({"type": "want", "key": ["not", "a", "key"]}, [])
    w.slice_view._handle_custom_msg({"type": "want", "key": "x" * 100_000}, [])
    assert len(browser.received) == sent
    w.slice_view._handle_custom_msg({"type": "want", "key": w.slice_view.volume_key}, [])
    assert browser.received[-1] == w.slice_view.volume_key
    w.close()


def test_volume_key_is_the_content_and_the_case() -> None:
    """Same bytes and case: same key; one voxel changed, or another case: another key."""
    rng = np.random.default_rng(0)
    image = rng.normal(100, 20, (4, 16, 16)).astype(np.float32)
    labels = np.zeros((4, 16, 16), np.uint8)
    labels[1:3, 5:9, 5:9] = 1
    first = PackedCase(pack_volume(image, labels, {"LV": 1}), "/data/p1", "ED")
    again = PackedCase(pack_volume(image.copy(), labels, {"LV": 1}), "/data/p1", "ED")
    image[2, 0, 0] += 500
    changed = PackedCase(pack_volume(image, labels, {"LV": 1}), "/data/p1", "ED")
    other = PackedCase(first.volume, "/data/p2", "ED")
    assert first.key == again.key and first.key.startswith("ED:/data/p1#")
    assert len({first.key, changed.key, other.key}) == 3


@pytest.mark.parametrize("evicted", [True, False])
def test_a_volume_the_browser_lost_is_asked_for_and_sent(signed, evicted) -> None:  # noqa: F811
    """A page that dropped the kept volumes (reload, eviction) asks once and paints the right patient."""
    root, _ = signed
    w, browser = screen(root)
    if evicted:
        browser.kept.clear()
    w.next_patient_button.click()
    assert stripes_seen(browser.paint()) == number(w.state.patient)
    assert browser.wants == (1 if evicted else 0)
    w.close()


def test_a_switch_sends_the_images_first(signed, monkeypatch) -> None:  # noqa: F811
    """The switch's first message is the slice viewer's (the browser paints before the lists)."""
    import ipywidgets

    root, _ = signed
    w, _browser = screen(root)
    order = []
    monkeypatch.setattr(ipywidgets.Widget, "_send", lambda self, msg, buffers=None: order.append(self))
    w.next_patient_button.click()
    assert order and order[0] is w.slice_view
    assert w.title in order[:3]  # the patient's name follows at once


# -- ED and ES side by side in the mosaic (issue 12) -----------------------------------------------
def other_phase_of(key: str) -> tuple[str, str]:
    """(phase, patient folder) a content key was packed from, as the browser reads it."""
    head = key.rsplit("#", 1)[0]
    phase, folder = head.split(":", 1)
    return phase, folder


def test_the_other_phase_of_the_patient_is_named_and_held(signed) -> None:  # noqa: F811
    """Once the case is painted, ``other_key`` names this patient's other phase and the browser holds it."""
    root, _ = signed
    w, browser = screen(root)
    view = w.slice_view
    assert other_phase_of(view.other_key) == ("ES", str(w.state.patient_dir()))
    assert view.other_key in browser.kept
    w.phase_toggle.value = "ES"  # the ED volume, on screen a moment ago, is now the other phase
    browser.paint()
    assert other_phase_of(view.other_key) == ("ED", str(w.state.patient_dir()))
    assert view.other_key in browser.kept
    w.close()


def test_the_other_phase_is_never_another_patients(signed) -> None:  # noqa: F811
    """Walking both phases of the cohort: ``other_key`` is '' or this patient's other phase, no other's."""
    root, folders = signed
    w, browser = screen(root)
    for step in range(2 * len(folders)):
        if step == len(folders):
            w.phase_toggle.value = "ES"
        w.next_patient_button.click()
        key = w.slice_view.other_key
        assert key == "" or other_phase_of(key) == (
            "ED" if w.state.phase == "ES" else "ES",
            str(w.state.patient_dir()),
        ), (w.state.patient, w.state.phase, key)
        browser.paint()
        w.wait_idle()
        assert w.slice_view.other_key in browser.kept  # sent once the case was painted
    w.close()


def test_want_of_the_other_phase_is_answered(signed) -> None:  # noqa: F811
    """A page that lost the other phase asks for it and gets it (it is a volume the kernel chose)."""
    root, _ = signed
    w, browser = screen(root)
    browser.kept.clear()
    w.slice_view._handle_custom_msg({"type": "want", "key": w.slice_view.other_key}, [])
    assert browser.received[-1] == w.slice_view.other_key
    w.close()


def test_a_message_forgets_the_other_phase(signed) -> None:  # noqa: F811
    """A case error blanks the mosaic's second half too."""
    root, _ = signed
    w, _ = screen(root)
    w.slice_view.show_message("The labels file is not a valid NIfTI file.")
    assert w.slice_view.other_key == ""
    w.close()


def test_in_the_mosaic_the_other_phase_goes_first(signed) -> None:  # noqa: F811
    """With the mosaic on, the first volume sent after the paint is this patient's other phase."""
    root, _ = signed
    w = ReviewWidget(root=root, user=REVIEWER, dataset="cohort.json")
    w.state.mosaic = True
    browser = Browser(w.slice_view)
    w.wait_idle()
    browser.paint()
    assert browser.received[1] == w.slice_view.other_key
    assert other_phase_of(browser.received[1]) == ("ES", str(w.state.patient_dir()))
    w.close()


def test_the_announced_moves_are_what_the_keys_then_show(signed) -> None:  # noqa: F811
    """Walking next and back: before each key, ``ahead`` names exactly the volume and identity shown after."""
    root, _ = signed
    w, browser = screen(root)
    for key in ["n", "n", "p", "ArrowDown", "n", "ArrowUp", "p", "p"]:
        move = "next" if key in ("n", "ArrowDown") else "prev"
        announced = w.slice_view.ahead[move]
        assert w.slice_view.ahead["from"] == w.slice_view.case_id
        assert w.handle_key({"event": "keydown", "key": key, "target": {"tagName": "DIV"}})
        assert (w.slice_view.volume_key, w.slice_view.case_id) == (announced["key"], announced["case_id"])
        assert announced["label"] == Path(w.state.patient).name
        assert announced["window"] == w.slice_view.window and announced["shape"] == w.slice_view.shape
        assert announced["orientation"] == w.slice_view.orientation
        assert stripes_seen(browser.paint()) == number(w.state.patient)
        w.wait_idle()
    w.close()


def test_the_announced_moves_follow_the_order_and_the_queue(signed) -> None:  # noqa: F811
    """A new order, a filter and a decision re-announce the next patient at once (before any key)."""
    root, _ = signed
    w, _browser = screen(root)
    assert Path(w.slice_view.ahead["next"]["label"]).name == "p2"
    w.state.register_order("p3 first", lambda state: [0, 2, 1, 3, 4])
    w.order_dropdown.options = w.state.orders()
    w.order_dropdown.value = "p3 first"
    w.wait_idle()
    assert w.slice_view.ahead["next"]["label"] == "p3"  # never the kept p2
    assert w.slice_view.ahead["prev"]["label"] == "p5"
    w.state.decide("accept")
    w.state.set_phase("ES")
    w.state.decide("accept")
    w.state.set_phase("ED")
    w.state.jump(2)  # p3, then a filter that leaves only the undecided ones
    w.filter_dropdown.value = "undecided"
    w.wait_idle()
    assert [Path(w.state.patients[i]).name for i in w.state.queue] == ["p3", "p2", "p4", "p5"]
    assert w.slice_view.ahead["next"]["label"] == "p2" and w.slice_view.ahead["prev"]["label"] == "p5"
    w.state.decide("reject")
    w.state.set_phase("ES")
    w.state.decide("reject")  # p3 leaves the undecided queue; the screen stays on p3
    assert w.slice_view.ahead["from"] == w.slice_view.case_id
    assert w.slice_view.ahead["next"]["label"] == "p2" and w.slice_view.ahead["prev"]["label"] == "p5"
    w.state.jump(1)  # p2; its decisions take p3 out of its neighbours
    w.wait_idle()
    assert w.slice_view.ahead["prev"]["label"] == "p5"  # p1 and p3 are decided
    assert w.slice_view.ahead["next"]["label"] == "p4"
    w.state.dataset = ""  # no dataset: nothing announced
    assert w.slice_view.ahead == {}
    w.close()


def test_nothing_is_announced_for_a_case_that_could_not_be_shown(signed) -> None:  # noqa: F811
    """A failed case (an error sentence instead of the images) announces no move."""
    root, _ = signed
    w, _browser = screen(root)
    assert w.slice_view.ahead
    w.state.fail_case("the file is broken")
    assert w.slice_view.ahead == {}
    w.close()
