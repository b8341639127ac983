"""The Voilà dashboard in real Chromium: loads offline, draws every panel, keeps every decision.

One Voilà server (``cmrqc serve --demo`` on a tmp data root, reviewer ``reviewer``) serves the
module; the tests run in order on it. Time-to-interactive is printed, not asserted.
Screenshots of each step in ``test-artifacts/<test>/``.
"""

from __future__ import annotations

import io
import json
import re
import time

import numpy as np
import pytest
from PIL import Image

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def decision_button(page, label: str):
    """The decision button whose label starts with ``label`` (an active one carries a check icon)."""
    return page.get_by_role("button", name=re.compile(rf"\b{re.escape(label)} \(", re.IGNORECASE)).first


def open_dashboard(page, url: str) -> float:
    """Open the dashboard; return seconds from navigation start to clickable decision buttons."""
    started = time.monotonic()
    page.goto(url, wait_until="commit")
    button = decision_button(page, "reject")
    button.wait_for(state="visible", timeout=120_000)
    assert button.is_enabled()
    return time.monotonic() - started


def wait_for(predicate, timeout_s: float = 20.0, what: str = "condition"):
    """Poll ``predicate`` until it returns something truthy; return it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")


def stored(dataset, patient_suffix: str, phase: str) -> str:
    """The stored ``<phase>_Comments`` of the patient whose key ends with ``patient_suffix``."""
    data = json.loads(dataset.read_text())
    key = next(k for k in data if k.endswith(patient_suffix))
    return data[key][f"{phase}_Comments"]


def coloured_pixels(png: bytes, min_chroma: int = 80) -> int:
    """Pixels of a screenshot whose channels differ by at least ``min_chroma`` (clearly coloured)."""
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.int16)
    return int(((rgb.max(axis=2) - rgb.min(axis=2)) >= min_chroma).sum())


def patient_label(page) -> str:
    """Where the navigation says we are: "(patient 1 of 10)"."""
    return page.locator("text=/patient \\d+ of \\d+/").first.inner_text()


def test_dashboard_loads_offline_with_every_panel(voila_server, new_page, shot):
    """The dashboard becomes interactive, asks nothing of the internet, and draws all its panels."""
    page = new_page()
    origin = voila_server.url.rstrip("/")
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.on("websocket", lambda ws: requests.append(ws.url))

    seconds = open_dashboard(page, voila_server.url)
    print(f"\n[voila] time-to-interactive (navigation -> decision buttons clickable): {seconds:.1f} s")
    shot(page, "loaded", full_page=True)

    local = (origin, origin.replace("http://", "ws://"), f"blob:{origin}", "data:")
    outside = [url for url in requests if not url.startswith(local)]
    assert not outside, f"requests leaving 127.0.0.1: {outside}"

    # Slice viewer: both canvases painted, the labels one in structure colours.
    mri = page.locator(".cmrqc-sv-mri").first
    labels = page.locator(".cmrqc-sv-labels").first
    mri.wait_for(state="visible")
    wait_for(lambda: coloured_pixels(labels.screenshot()) > 200, what="coloured labels canvas")
    assert coloured_pixels(mri.screenshot()) > 200  # the overlay is on by default
    for part in ["Case", "Show", "Dataset", "Download JSON"]:
        assert page.get_by_text(part, exact=True).first.is_visible(), part
    assert page.locator(".cmrqc-patient-list select").is_visible()
    assert page.locator(".cmrqc-comment textarea").is_visible()
    assert voila_server.user in page.locator("h3").first.inner_text()
    assert "ReviewWidget" not in page.content()  # no source shown
    assert "cdn.jsdelivr" not in page.content()

    # 3D: expand it; the WebGL canvas must really draw coloured points.
    page.get_by_role("button", name=re.compile("Show 3D")).first.click()
    canvas = page.locator(".cmrqc-volume3d canvas").first
    canvas.wait_for(state="visible", timeout=60_000)
    count = wait_for(lambda: coloured_pixels(canvas.screenshot()), timeout_s=60, what="3D points drawn")
    shot(canvas, "3d-canvas")
    shot(page, "with-3d", full_page=True)
    print(f"[voila] 3D canvas: {count} coloured pixels")
    assert count > 200


def test_decision_and_comment_survive_navigation(voila_server, new_page, shot):
    """Reject + comment, next patient by keyboard, back: the file, the list and the pie show both."""
    page = new_page()
    open_dashboard(page, voila_server.url)
    assert "patient 1 of" in patient_label(page)
    dataset = voila_server.dataset

    decision_button(page, "reject").click()
    wait_for(lambda: stored(dataset, "demo001", "ED").startswith("reject:"), what="reject saved")
    comment = page.locator(".cmrqc-comment textarea")
    comment.click()
    comment.fill("LV leaks into the atrium")
    shot(page, "rejected-with-comment", full_page=True)

    # Keys never act inside the comment box, wherever the mouse is: Esc leaves the box (saving it),
    # then the arrow moves on. (Hovering used to steal the box's focus: that was the bug.)
    decision_button(page, "accept").hover()
    page.keyboard.press("ArrowDown")
    assert "patient 1 of" in patient_label(page) and comment.input_value() == "LV leaks into the atrium"
    page.keyboard.press("Escape")
    page.keyboard.press("ArrowDown")
    wait_for(lambda: "patient 2 of" in patient_label(page), what="next patient")
    assert stored(dataset, "demo001", "ED") == "reject:LV leaks into the atrium"
    shot(page, "next-patient", full_page=True)

    page.keyboard.press("ArrowUp")
    wait_for(lambda: "patient 1 of" in patient_label(page), what="back to the first patient")
    wait_for(lambda: comment.input_value() == "LV leaks into the atrium", what="comment shown again")
    assert "mod-danger" in (decision_button(page, "reject").get_attribute("class") or "")
    shot(page, "back-to-first", full_page=True)

    assert stored(dataset, "demo001", "ED") == "reject:LV leaks into the atrium"
    first_option = page.locator(".cmrqc-patient-list option").first.inner_text()
    assert re.search(r"ED\s+reject", first_option), first_option
    stats = page.locator("table").filter(has_text="no decision").first.inner_text()
    assert re.search(r"1\s*\(10\s*%\)", stats), stats
    pie = page.locator(".cmrqc-review img").last
    assert coloured_pixels(pie.screenshot()) > 50  # the red reject wedge
    shot(pie, "pie")


def test_broken_case_shows_its_error_and_can_be_decided(voila_server, new_page, shot):
    """The truncated demo case shows one clear sentence, and a decision on it is still saved."""
    from cmrqc_widgets.demo import DEMO_BROKEN

    broken = next(name for name, what in DEMO_BROKEN.items() if "truncated" in what)
    page = new_page()
    open_dashboard(page, voila_server.url)
    options = page.locator(".cmrqc-patient-list option").all_inner_texts()
    index = next(i for i, text in enumerate(options) if text.strip().startswith(broken))
    page.locator(".cmrqc-patient-list select").select_option(index=index)
    wait_for(lambda: f"patient {index + 1} of" in patient_label(page), what=f"{broken} selected")
    page.get_by_role("button", name="ES", exact=True).first.click()
    error = page.locator(".cmrqc-error").first
    error.wait_for(state="visible", timeout=30_000)
    message = error.inner_text()
    shot(page, "broken-case", full_page=True)
    assert "lvsa_SR_ES" in message or broken in message, message
    assert len(message.strip().splitlines()) == 1, message

    decision_button(page, "reject").click()
    wait_for(lambda: stored(voila_server.dataset, broken, "ES").startswith("reject:"), what="decision saved")
    shot(page, "broken-case-decided", full_page=True)


def test_a_later_tab_shows_earlier_decisions(voila_server, new_page, shot):
    """A tab opened after a decision (served by a preheated kernel) shows it: no stale screen."""
    from cmrqc_widgets.serve.voila import find_notebook, voila_arguments

    argv = voila_arguments(find_notebook(), port=1, ip="127.0.0.1", open_browser=False)
    assert any("preheat_kernel=True" in arg for arg in argv), argv  # the shipped notebook preheats

    first = new_page()
    open_dashboard(first, voila_server.url)
    # The screen reopens where this reviewer left off; go to the first patient's ED.
    first.locator(".cmrqc-patient-list select").select_option(index=0)
    wait_for(lambda: "patient 1 of" in patient_label(first), what="first patient")
    first.get_by_role("button", name="ED", exact=True).first.click()
    decision_button(first, "fine-tune").click()
    wait_for(lambda: stored(voila_server.dataset, "demo001", "ED").startswith("finetune:"), what="saved")
    first.close()

    time.sleep(3)  # the kernel pool refills with a kernel preheated before this decision
    second = new_page()
    open_dashboard(second, voila_server.url)
    first_option = second.locator(".cmrqc-patient-list option").first.inner_text()
    shot(second, "later-tab", full_page=True)
    assert re.search(r"ED\s+fine-?tune", first_option), first_option
