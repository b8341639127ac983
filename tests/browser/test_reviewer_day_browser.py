"""A reviewer's day in real Chromium on real Voilà: keys that never misfire, nothing typed lost.

One Voilà server on the demo cohort (reviewer ``reviewer``) serves the module; the tests run in
order on it and read the dataset file on disk. The last test kills the kernel. Screenshots of each
step go to ``test-artifacts/<test>/``.
"""

from __future__ import annotations

import json
import time

import pytest
from test_dashboard import decision_button, open_dashboard, patient_label, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]

MRI = ".cmrqc-sv-mri"
COMMENT = ".cmrqc-comment textarea"


def on_disk(dataset) -> dict:
    """The dataset file: patient key -> {"ED_Comments": ..., "ES_Comments": ...}."""
    return json.loads(dataset.read_text())


def undecided_phases(dataset) -> int:
    """Phases on disk with no decision word."""
    return sum(
        not value.split(":", 1)[0] for entry in on_disk(dataset).values() for value in entry.values()
    )


def entry(dataset, patient_label_text: str) -> dict:
    """The stored entry of the patient named in the header ("demo003 ...")."""
    name = patient_label_text.split()[0]
    return next(v for k, v in on_disk(dataset).items() if k.rstrip("/").endswith(name))


def current_patient(page) -> str:
    """Patient id shown by the navigation panel."""
    return page.locator(".cmrqc-patient-name").first.inner_text().strip()


def current_phase(page) -> str:
    """Phase marked current in the header."""
    return page.locator(".cmrqc-phase-decision.cmrqc-current").first.inner_text().split()[0]


def test_typing_over_image_and_buttons_writes_no_decision(voila_server, new_page, shot):
    """Typing with the pointer on the image, then on the buttons: the text is saved whole, nothing decided."""
    page = new_page()
    open_dashboard(page, voila_server.url)
    patient = current_patient(page)
    where = patient_label(page)
    before = entry(voila_server.dataset, patient)

    page.locator(MRI).first.hover()
    page.keyboard.press("c")  # C focuses the comment box; the "c" itself is not typed
    page.keyboard.type("myo ok")
    page.locator(MRI).first.hover()  # the issue: hovering the image took the focus and "r" rejected
    page.keyboard.type(" but rv")
    decision_button(page, "accept").hover()
    page.keyboard.type(" septum ok, accept; next")
    shot(page, "typed")
    text = "myo ok but rv septum ok, accept; next"
    assert page.locator(COMMENT).input_value() == text
    wait_for(lambda: entry(voila_server.dataset, patient)["ED_Comments"] == f":{text}", what="comment saved")
    page.keyboard.press("Escape")  # leaves the box; now keys act again
    assert patient_label(page) == where
    assert entry(voila_server.dataset, patient)["ES_Comments"] == before["ES_Comments"]
    shot(page, "saved")


def test_comment_saved_when_the_tab_closes(voila_server, new_page):
    """A comment typed and the tab closed at once (no pause, no leaving the box) is in the file."""
    page = new_page()
    open_dashboard(page, voila_server.url)
    patient = current_patient(page)
    page.keyboard.press("s")
    wait_for(lambda: current_phase(page) == "ES", what="ES shown")
    page.locator(COMMENT).click()
    page.keyboard.type("closing the tab now", delay=40)  # a fast typist; the tab closes at once
    page.close(run_before_unload=True)
    closed = time.monotonic()
    wait_for(
        lambda: entry(voila_server.dataset, patient)["ES_Comments"].endswith("closing the tab now"),
        timeout_s=30,
        what=f"comment on disk after close (on disk: {entry(voila_server.dataset, patient)})",
    )
    print(f"\n[day] comment on disk {time.monotonic() - closed:.1f} s after the tab closed")


def test_decide_and_advance_one_key_per_phase(voila_server, new_page, shot):
    """Pressing A alone walks the cohort: each press decides one phase and moves on; Z undoes."""
    page = new_page()
    open_dashboard(page, voila_server.url)
    page.locator(".cmrqc-patient-list select").select_option(index=0)
    wait_for(lambda: "1 of" in patient_label(page), what="first patient")
    page.keyboard.press("e")
    dataset = voila_server.dataset
    remaining = undecided_phases(dataset)
    patients = len(on_disk(dataset))
    presses = 0
    page.locator(MRI).first.hover()
    while undecided_phases(dataset) and presses < 2 * patients:
        left = undecided_phases(dataset)
        page.keyboard.press("a")
        presses += 1
        wait_for(lambda left=left: undecided_phases(dataset) < left, what=f"press {presses} saved")
    shot(page, "all-decided")
    print(f"\n[day] {presses} key presses for {remaining} undecided phases of {patients} patients")
    assert presses == remaining
    assert undecided_phases(dataset) == 0

    # Undo: the last decision is put back (to no decision) on its own case.
    last = {k: dict(v) for k, v in on_disk(dataset).items()}
    page.keyboard.press("Control+z")
    wait_for(lambda: undecided_phases(dataset) == 1, what="undo saved")
    changed = [(k, p) for k, v in on_disk(dataset).items() for p, s in v.items() if s != last[k][p]]
    assert len(changed) == 1
    key, phase = changed[0]
    now = on_disk(dataset)[key][phase]
    assert now.partition(":")[0] == "" and now.partition(":")[2] == last[key][phase].partition(":")[2]
    wait_for(lambda: key.rstrip("/").endswith(current_patient(page)), what="undo shows its case")
    shot(page, "undone")


def test_keys_overlay(voila_server, new_page, shot):
    """? shows the list of keys, Esc hides it."""
    page = new_page()
    open_dashboard(page, voila_server.url)
    overlay = page.locator(".cmrqc-keys-overlay")
    page.keyboard.press("?")
    overlay.wait_for(state="visible")
    assert "undo" in overlay.inner_text() and "Shift+A" in overlay.inner_text()
    shot(page, "overlay")
    page.keyboard.press("Escape")
    overlay.wait_for(state="hidden")


@pytest.mark.parametrize("size", [(1280, 800), (1920, 1080)])
def test_screen_fits_the_window(voila_server, new_page, shot, size):
    """Header, patient id, moves, both images, decision buttons and comment sit inside the window."""
    width, height = size
    page = new_page(viewport={"width": width, "height": height})
    open_dashboard(page, voila_server.url)
    page.locator(MRI).first.wait_for(state="visible")
    viewer = page.locator(".cmrqc-slice-viewer").first
    wait_for(lambda: viewer.get_attribute("data-ready") == "1", what="painted")
    shot(page, f"{width}x{height}")
    parts = {
        "header": ".cmrqc-header",
        "patient id": ".cmrqc-patient-name",
        "MRI": MRI,
        "labels": ".cmrqc-sv-labels",
        "comment": COMMENT,
    }
    boxes = {name: page.locator(selector).first.bounding_box() for name, selector in parts.items()}
    boxes["prev"] = page.get_by_role("button", name="Prev").first.bounding_box()
    boxes["next"] = page.get_by_role("button", name="Next").first.bounding_box()  # before "Next undecided"
    for label in ("accept", "reject", "fine-tune", "unclassified"):
        boxes[label] = decision_button(page, label).bounding_box()
    for name, box in boxes.items():
        assert box is not None, name
        inside = box["x"] >= 0 and box["y"] >= 0 and box["x"] + box["width"] <= width
        assert inside and box["y"] + box["height"] <= height, f"{name} {box} outside {width}x{height}"
    image = boxes["MRI"]["width"]
    print(f"\n[day] {width}x{height}: image {image:.0f} px wide")
    if width == 1920:
        assert image > 1.5 * 320  # the images use the large screen (they stayed 320 px)


def tiles(png_data_url: str, cols: int, rows: int) -> list:
    """The tiles of a mosaic canvas (a ``data:`` PNG URL), row by row, as RGB arrays."""
    import base64
    import io

    import numpy as np
    from PIL import Image

    data = base64.b64decode(png_data_url.split(",", 1)[1])
    rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)
    h, w = rgb.shape[0] // rows, rgb.shape[1] // cols
    return [rgb[r * h : (r + 1) * h, c * w : (c + 1) * w] for r in range(rows) for c in range(cols)]


def test_mosaic_shows_every_slice(voila_server, new_page, shot):
    """M paints every short-axis slice of the phase, with the overlay, from the volume in the browser."""
    page = new_page()
    open_dashboard(page, voila_server.url)
    viewer = page.locator(".cmrqc-slice-viewer").first
    wait_for(lambda: viewer.get_attribute("data-ready") == "1", what="painted")
    slices = int(viewer.locator(".cmrqc-sv-status").inner_text().split("/")[-1])  # "slice 7 / 12"
    page.keyboard.press("m")
    mosaic = wait_for(lambda: viewer.get_attribute("data-mosaic"), what="mosaic painted")
    n, cols, rows = (int(v) for v in mosaic.split())
    shot(page, "mosaic")
    url = page.evaluate("() => document.querySelector('.cmrqc-sv-mri').toDataURL('image/png')")
    shown = tiles(url, cols, rows)
    assert n == slices and cols * rows >= n
    for k in range(n):
        assert shown[k].max() > 50, f"slice {k + 1} of {n} is blank in the mosaic"
    coloured = [int(((t.max(axis=2) - t.min(axis=2)) > 80).any()) for t in shown[:n]]
    assert sum(coloured) >= n // 2, coloured  # the overlay on the tiles that hold labels
    page.keyboard.press("m")
    wait_for(lambda: "mosaic" not in viewer.locator(".cmrqc-sv-status").inner_text(), what="one slice again")


def test_three_views_by_key_follow_the_slice_keys(voila_server, new_page, shot):
    """V shows short axis, HLA and VLA side by side; → moves the short-axis line down the long axes;
    the ? overlay lists V; V again is one view."""
    page = new_page()
    open_dashboard(page, voila_server.url)
    viewer = page.locator(".cmrqc-slice-viewer").first
    wait_for(lambda: viewer.get_attribute("data-ready") == "1", what="painted")
    page.keyboard.press("v")
    wait_for(lambda: viewer.get_attribute("data-mode") == "three", what="three views")
    shot(page, "three-views")
    assert viewer.locator(".cmrqc-sv-third").is_visible()
    before = json.loads(wait_for(lambda: viewer.get_attribute("data-cross"), what="reference lines"))
    page.keyboard.press("ArrowRight")
    moved = lambda: json.loads(viewer.get_attribute("data-cross"))["saOnHla"] > before["saOnHla"]  # noqa: E731
    wait_for(moved, what="the short-axis line moved down")
    overlay = page.locator(".cmrqc-keys-overlay").first
    page.keyboard.press("?")
    wait_for(overlay.is_visible, what="the keys overlay")
    assert "three views" in overlay.inner_text()
    page.keyboard.press("?")
    page.keyboard.press("v")
    wait_for(lambda: viewer.get_attribute("data-mode") == "single", what="one view again")


def test_dead_kernel_shows_banner_and_disables_buttons(voila_server, new_page, shot):
    """Kill the kernel: a banner says the connection is lost and when the last save was; buttons off."""
    # It kills every kernel of this module's server, the preheated spare too: so it runs last here.
    import psutil

    page = new_page()
    open_dashboard(page, voila_server.url)
    decision_button(page, "fine-tune").click()
    wait_for(lambda: "saved" in page.locator(".cmrqc-saved").first.inner_text(), what="a save")
    saved = page.locator(".cmrqc-saved").first.inner_text().split("saved", 1)[1].split()[0]
    kernels = [
        p
        for p in psutil.Process(voila_server.server.process.pid).children(recursive=True)
        if "ipykernel" in " ".join(p.cmdline())
    ]
    assert kernels
    for kernel in kernels:  # this module's own server: its kernels are ours to end
        kernel.kill()
    banner = page.locator(".cmrqc-offline-banner")
    banner.wait_for(state="visible", timeout=60_000)
    shot(page, "connection-lost")
    assert "Connection lost" in banner.inner_text() and saved in banner.inner_text()
    assert not decision_button(page, "accept").is_enabled()
