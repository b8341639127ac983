"""Without WebGL (``--disable-webgl``, as on virtual desktops without a GPU) the 2D review is whole.

The module launches its own Chromium with WebGL switched off (the ``browser`` fixture is replaced
here) against the shipped dashboard (``voila_server``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import CHROMIUM, CHROMIUM_ARGS
from test_dashboard import coloured_pixels, decision_button, open_dashboard, patient_label, stored, wait_for

from cmrqc_widgets.widgets.volume3d import NO_WEBGL

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Debian's Chromium, headless, with WebGL and the other 3D APIs off."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        args = [*CHROMIUM_ARGS, "--disable-webgl", "--disable-3d-apis"]
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
        yield chromium
        chromium.close()


def test_without_webgl_3d_explains_itself_and_2d_review_works(voila_server, new_page, shot):
    """No WebGL: the 3D toggle says why it is off, no error box; slices, keys and decisions work."""
    page = new_page()
    assert page.evaluate("() => !document.createElement('canvas').getContext('webgl')")  # really off
    open_dashboard(page, voila_server.url)
    toggle = page.get_by_role("button", name=re.compile("Show 3D")).first
    wait_for(toggle.is_disabled, what="the 3D toggle disabled")
    sentence = page.locator(".cmrqc-volume3d").get_by_text(NO_WEBGL)
    assert sentence.is_visible()
    toggle.click(force=True)  # pressing it anyway changes nothing
    page.wait_for_timeout(1000)
    shot(page, "no-webgl", full_page=True)
    assert page.locator(".cmrqc-volume3d canvas").count() == 0
    assert "Click to show javascript error" not in page.content()

    mri = page.locator(".cmrqc-sv-mri").first
    wait_for(lambda: coloured_pixels(mri.screenshot()) > 200, what="MRI with overlay painted")
    decision_button(page, "reject").click()
    wait_for(lambda: stored(voila_server.dataset, "demo001", "ED").startswith("reject:"), what="saved")
    decision_button(page, "accept").hover()
    page.keyboard.press("ArrowDown")
    wait_for(lambda: "patient 2 of" in patient_label(page), what="next patient by key")
    page.keyboard.press("a")
    wait_for(lambda: stored(voila_server.dataset, "demo002", "ED").startswith("accept:"), what="key A saved")
    assert "Click to show javascript error" not in page.content()
