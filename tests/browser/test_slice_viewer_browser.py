"""SliceViewer in real Chromium, served by a real Voilà: drawn canvases, colours, wheel, kernel changes, play.

Screenshots go to ``test-artifacts/slice_viewer/`` (not committed). Paint times are printed, not asserted.
"""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest
from conftest import stop_group
from PIL import Image

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "slice_viewer"
VIEWER = ".cmrqc-slice-viewer"

NOTEBOOK_CODE = """\
from types import SimpleNamespace

import ipywidgets as w
import numpy as np

from cmrqc_widgets.widgets.slice_viewer import SliceViewer, pack_case

data = np.load("phantom.npz")
case = SimpleNamespace(image=data["image"], labels=data["labels"], patient_dir="/data/p7", phase="ED",
                       label_map={"LV": 1, "RV": 2, "MYO": 3}, spacing=(8.0, 1.8, 1.8))
# ES: the same stack mirrored left-right, so its pixels cannot pass for ED's.
es_case = SimpleNamespace(**{**vars(case), "phase": "ES", "image": data["image"][:, :, ::-1],
                             "labels": data["labels"][:, :, ::-1]})
viewer = SliceViewer()
viewer.show_case(case, slice_index=5)

step = w.Button(description="kernel step")
step.on_click(lambda _: viewer.step(1))
play = w.Button(description="play 20")
play.on_click(lambda _: viewer.set_trait("fps", 20) or viewer.set_trait("playing", True))
stop = w.Button(description="stop")
stop.on_click(lambda _: viewer.set_trait("playing", False))
long_axis = w.Button(description="view hla")
long_axis.on_click(lambda _: viewer.set_view("hla"))
broken = w.Button(description="message")
broken.on_click(lambda _: viewer.show_message("The labels file of patient007 is not a valid NIfTI file."))
back = w.Button(description="show case")
back.on_click(lambda _: viewer.show_case(case, slice_index=5) or viewer.set_view("sa", 5))
mosaic = w.Button(description="mosaic")
mosaic.on_click(lambda _: viewer.set_trait("mosaic", not viewer.mosaic))
offer_es = w.Button(description="offer ES")
offer_es.on_click(lambda _: viewer.offer([pack_case(es_case)]))
# A kernel bug played out: another patient's ES volume sent and named as this patient's other phase.
intruder = SimpleNamespace(**{**vars(es_case), "patient_dir": "/data/p8"})
wrong_es = w.Button(description="wrong ES")
wrong_es.on_click(lambda _: viewer._send_volume(pack_case(intruder))
                  or viewer.set_trait("other_key", pack_case(intruder).key))
# Another patient named while their volume is still on its way (it never comes: the key is unknown).
def name_foreign(_):
    with viewer.hold_sync():
        viewer.case_id = viewer.volume_id = "0:ED:p9"
        viewer.volume_key = "ED:/data/p9#000000"
foreign = w.Button(description="foreign")
foreign.on_click(name_foreign)
zoom = w.Button(description="zoom")
zoom.on_click(lambda _: viewer.set_trait("zoom", 2.5 if viewer.zoom == 1 else 1.0))
three = w.Button(description="three views")
three.on_click(lambda _: viewer.set_trait("three_views", not viewer.three_views))
kernel_index = w.IntText(value=viewer.slice_index, description="kernel index")
viewer.observe(lambda change: setattr(kernel_index, "value", change["new"]), "slice_index")
display(w.VBox([viewer, w.HBox([step, play, stop, long_axis, broken, back, kernel_index]),
                w.HBox([mosaic, offer_es, wrong_es, three, zoom, foreign])]))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_phantom(folder: Path, slices: int = 12, size: int = 200) -> None:
    """A noisy short-axis stack (labels 1 LV, 2 RV, 3 MYO) whose LV grows from slice to slice.

    Its own phantom (not ``synthetic.phantom``): the tests need an LV that changes from slice to slice.
    """
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float32)
    centre = (size * 0.5, size * 0.4)
    labels = np.zeros((slices, size, size), np.uint8)
    for k in range(slices):
        lv_radius = 14 + 2 * k
        r_lv = np.hypot(rows - centre[0], cols - centre[1])
        r_rv = np.hypot(rows - centre[0], cols - centre[1] - 1.9 * lv_radius)
        labels[k][(r_rv < 1.4 * lv_radius) & (r_lv >= lv_radius + 3)] = 2
        labels[k][(r_lv >= lv_radius) & (r_lv < lv_radius + 3)] = 3
        labels[k][r_lv < lv_radius] = 1
    image = np.where(labels > 0, 400.0, 100.0) + rng.normal(0, 10, labels.shape)
    np.savez(folder / "phantom.npz", image=image.astype(np.float32), labels=labels)


@pytest.fixture(scope="module")
def voila_url(tmp_path_factory):
    """A Voilà server on a free 127.0.0.1 port rendering a notebook that shows one SliceViewer."""
    folder = tmp_path_factory.mktemp("slice_viewer_voila")
    write_phantom(folder)
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(NOTEBOOK_CODE)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, folder / "notebook.ipynb")
    port = free_port()
    log = (folder / "voila.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "voila", "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1",
         "--show_tracebacks=True", "notebook.ipynb"],
        cwd=folder, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"Voilà exited early; see {folder / 'voila.log'}.")
            try:  # a TCP connect only: GET / would start a kernel per poll
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"Voilà did not answer on port {port} in 60 s; see {folder / 'voila.log'}.")
                time.sleep(0.3)
        yield url
    finally:
        stop_group(process, timeout=10)
        log.close()


@pytest.fixture(scope="module")
def page(voila_url, browser):
    """A Chromium page (the shared ``browser`` fixture) with the viewer decoded and drawn."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    tab = browser.new_page(viewport={"width": 1200, "height": 900})
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.goto(voila_url, timeout=60_000)
    try:
        tab.wait_for_selector(f'{VIEWER}[data-ready="1"]', timeout=90_000)
    except playwright_api.TimeoutError:
        tab.screenshot(path=ARTIFACTS / "not-ready.png")
        pytest.fail(f"The slice viewer never drew; page errors: {errors}")
    yield tab
    tab.close()


def canvas_pixels(page, which: str) -> np.ndarray:
    """RGB pixels of one canvas as the screen shows it."""
    png = page.locator(f"{VIEWER} canvas.cmrqc-sv-{which}").screenshot()
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def slice_shown(page) -> int:
    return int(page.locator(VIEWER).get_attribute("data-slice"))


def kernel_index(page) -> int:
    return int(page.locator(".widget-inline-hbox input[type=number]").input_value())


def save(page, name: str) -> None:
    page.locator(VIEWER).screenshot(path=ARTIFACTS / f"{name}.png")


def test_both_canvases_are_drawn_with_structure_colours(page):
    """The MRI and the labels panels are painted, and red, green and blue structures appear in both."""
    save(page, "01-loaded")
    mri = canvas_pixels(page, "mri")
    labels = canvas_pixels(page, "labels")
    assert mri.shape[1] >= 300  # 200 columns of 1.8 mm shown about 320 px wide
    assert (mri.sum(axis=2) > 30).mean() > 0.5  # the MRI fills the panel
    r, g, b = mri[..., 0], mri[..., 1], mri[..., 2]
    for name, mask in {"red": (r > g + 60) & (r > b + 60), "green": (g > r + 60) & (g > b + 60),
                       "blue": (b > r + 60) & (b > g + 60)}.items():
        assert mask.sum() > 100, f"no {name} overlay in the MRI panel"
    r, g, b = labels[..., 0], labels[..., 1], labels[..., 2]
    for name, mask in {"red": (r > 200) & (g < 50) & (b < 50), "green": (g > 200) & (r < 50) & (b < 50),
                       "blue": (b > 200) & (r < 50) & (g < 50)}.items():
        assert mask.sum() > 100, f"no {name} structure in the labels panel"
    assert (labels.sum(axis=2) < 30).mean() > 0.3  # labels alone on black
    assert page.locator(f"{VIEWER} .cmrqc-sv-status").inner_text() == "slice 6 / 12"


def test_wheel_steps_the_slice_and_tells_the_kernel(page):
    """A wheel notch over the canvas paints the next slice and the kernel's slice index follows."""
    before_index, before = slice_shown(page), canvas_pixels(page, "labels")
    box = page.locator(f"{VIEWER} canvas.cmrqc-sv-mri").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, 100)
    page.wait_for_function(f"document.querySelector('{VIEWER}').dataset.slice === '{before_index + 1}'")
    save(page, "02-after-wheel")
    assert not np.array_equal(canvas_pixels(page, "labels"), before)
    page.wait_for_function(
        f"document.querySelector('.widget-inline-hbox input[type=number]').value === '{before_index + 1}'"
    )
    assert kernel_index(page) == before_index + 1


def test_kernel_side_change_repaints(page):
    """Changing slice_index in the kernel (a button calling step) repaints the canvases."""
    before_index, before = slice_shown(page), canvas_pixels(page, "mri")
    page.get_by_role("button", name="kernel step").click()
    page.wait_for_function(f"document.querySelector('{VIEWER}').dataset.slice === '{before_index + 1}'")
    save(page, "03-after-kernel-step")
    assert not np.array_equal(canvas_pixels(page, "mri"), before)


def test_slice_step_paint_time_is_reported(page):
    """Slice steps by wheel are painted from memory; the paint times are printed for the report."""
    timings = page.evaluate(
        """async (selector) => {
            const el = document.querySelector(selector);
            const panels = el.querySelector('.cmrqc-sv-panels');
            const frame = () => new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
            const draw = [], toFrame = [];
            for (let i = 0; i < 30; i++) {
                const before = el.dataset.draws;
                const t0 = performance.now();
                panels.dispatchEvent(new WheelEvent('wheel', {deltaY: i % 2 ? -100 : 100, bubbles: true,
                                                              cancelable: true}));
                await frame();
                if (el.dataset.draws !== before) {
                    toFrame.push(performance.now() - t0);
                    draw.push(Number(el.dataset.paintMs));
                }
                await new Promise((resolve) => setTimeout(resolve, 30));
            }
            return {draw, toFrame};
        }""",
        VIEWER,
    )
    draw, to_frame = np.array(timings["draw"]), np.array(timings["toFrame"])
    print(
        f"\nslice step, {len(draw)} steps of a 200x200 slice pair: draw median {np.median(draw):.2f} ms "
        f"(max {draw.max():.2f}); wheel event to next frame median {np.median(to_frame):.1f} ms "
        f"(max {to_frame.max():.1f})"
    )
    assert len(draw) >= 20  # nearly every wheel event painted a slice


def test_play_advances_in_the_browser_and_stops(page):
    """Play started from the kernel advances slices on the client, and stop halts it."""
    page.get_by_role("button", name="play 20").click()
    page.wait_for_timeout(500)
    rate = page.evaluate(
        """async (selector) => {
            const el = document.querySelector(selector);
            const d0 = Number(el.dataset.draws), t0 = performance.now();
            await new Promise((resolve) => setTimeout(resolve, 3000));
            return (Number(el.dataset.draws) - d0) / ((performance.now() - t0) / 1000);
        }""",
        VIEWER,
    )
    save(page, "04-playing")
    page.get_by_role("button", name="stop").click()
    page.wait_for_timeout(500)
    stopped_at = slice_shown(page)
    page.wait_for_timeout(500)
    print(f"\nplay at fps=20: {rate:.1f} slices painted per second")
    assert rate > 0
    assert slice_shown(page) == stopped_at


def test_long_axis_view_is_stretched_by_the_spacing(page):
    """The horizontal long axis shows slices as tall rows (8 mm vs 1.8 mm) with the structures cut through."""
    page.get_by_role("button", name="view hla").click()
    page.wait_for_function(
        f"document.querySelector('{VIEWER} .cmrqc-sv-status').textContent === 'slice 101 / 200'"
    )
    save(page, "05-long-axis")
    box = page.locator(f"{VIEWER} canvas.cmrqc-sv-labels").bounding_box()
    # 12 slices x 8 mm over 200 columns x 1.8 mm
    assert box["height"] / box["width"] == pytest.approx(12 * 8.0 / (200 * 1.8), rel=0.05)
    labels = canvas_pixels(page, "labels")
    assert ((labels[..., 0] > 200) & (labels[..., 1] < 50)).sum() > 50  # the LV, in red


def test_message_replaces_the_images_and_the_case_comes_back(page):
    """A case error shows its sentence instead of the canvases; showing a case brings the images back."""
    page.get_by_role("button", name="message").click()
    message = page.locator(f"{VIEWER} .cmrqc-sv-message")
    message.wait_for(state="visible")
    save(page, "06-message")
    assert message.inner_text() == "The labels file of patient007 is not a valid NIfTI file."
    assert not page.locator(f"{VIEWER} .cmrqc-sv-panels").is_visible()
    page.get_by_role("button", name="show case").click()
    page.wait_for_selector(f'{VIEWER}[data-ready="1"]')
    page.locator(f"{VIEWER} .cmrqc-sv-panels").wait_for(state="visible")
    assert not message.is_visible()
    assert page.locator(f"{VIEWER} .cmrqc-sv-status").inner_text() == "slice 6 / 12"


# -- whole-heart views (issue 12) --------------------------------------------------------------
def canvas_image(page, which: str) -> np.ndarray:
    """RGB pixels of one canvas at its own resolution (one pixel per voxel or display row)."""
    import base64

    script = f"() => document.querySelector('{VIEWER} canvas.cmrqc-sv-{which}').toDataURL('image/png')"
    url = page.evaluate(script)
    png = base64.b64decode(url.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def phantom_volumes(tmp_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The ED and ES MRI as the browser receives them (uint8, [slices, rows, cols])."""
    import zlib

    from cmrqc_widgets.render.packing import pack_volume

    write_phantom(tmp_path)
    data = np.load(tmp_path / "phantom.npz")
    volumes = []
    for flip in (slice(None), slice(None, None, -1)):
        image, labels = data["image"][:, :, flip], data["labels"][:, :, flip]
        packed, _, shape, _ = pack_volume(image, labels, {"LV": 1, "RV": 2, "MYO": 3})
        volumes.append(np.frombuffer(zlib.decompress(packed), np.uint8).reshape(shape).astype(float))
    return volumes[0], volumes[1]


def test_mosaic_shows_ed_and_es_side_by_side(page, tmp_path):
    """The mosaic shows every slice of ED (left) and ES (right): "ES loading…" until the kernel sends
    ES, then the right half's pixels are the ES volume's, not ED's."""
    viewer = page.locator(VIEWER)
    page.get_by_role("button", name="mosaic").click()
    page.wait_for_function(f"document.querySelector('{VIEWER}').dataset.mosaicEs === 'loading'")
    note = page.locator(f"{VIEWER} .cmrqc-sv-note").nth(1)
    assert note.is_visible() and note.inner_text() == "ES loading…"
    save(page, "07-mosaic-es-loading")
    page.get_by_role("button", name="offer ES").click()
    es_painted = f"!['loading', undefined].includes(document.querySelector('{VIEWER}').dataset.mosaicEs)"
    page.wait_for_function(es_painted)
    save(page, "08-mosaic-ed-es")
    assert not note.is_visible()
    captions = page.locator(f"{VIEWER} figcaption").all_inner_texts()
    assert captions[:2] == ["ED", "ES"]
    ed_volume, es_volume = phantom_volumes(tmp_path)
    halves = (("mri", "ed", ed_volume, es_volume), ("labels", "es", es_volume, ed_volume))
    for which, name, mine, theirs in halves:
        n, cols, rows = (int(v) for v in viewer.get_attribute(f"data-mosaic-{name}").split())
        assert n == 12 and cols * rows >= n
        shown = canvas_image(page, which)
        h, w = shown.shape[0] // rows, shown.shape[1] // cols
        for k in range(n):
            tile = shown[(k // cols) * h : (k // cols + 1) * h, (k % cols) * w : (k % cols + 1) * w]
            grey = tile.mean(axis=2).ravel()
            own = np.corrcoef(grey, mine[k].ravel())[0, 1]
            other = np.corrcoef(grey, theirs[k].ravel())[0, 1]
            assert own > 0.95 > other, f"{name} tile {k + 1}: {own:.2f} vs {other:.2f}"
            assert ((tile.max(axis=2) - tile.min(axis=2)) > 80).sum() > 50  # the overlay
    page.get_by_role("button", name="mosaic").click()
    page.wait_for_function(f"document.querySelector('{VIEWER}').dataset.mode === 'single'")


def yellow_rows(pixels: np.ndarray) -> list[int]:
    """Rows of a canvas crossed by the short-axis reference line (yellow across the whole width)."""
    r, g, b = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    return [int(y) for y in np.flatnonzero(((r > 200) & (g > 200) & (b < 80)).mean(axis=1) > 0.9)]


def test_three_views_draw_all_planes_and_the_line_follows_the_slice(page):
    """Short axis, HLA and VLA are painted side by side; the SA slice's line on the long axes moves
    down when the slice moves on, and the long-axis planes cross the SA view."""
    page.get_by_role("button", name="three views").click()
    page.wait_for_function(f"document.querySelector('{VIEWER}').dataset.mode === 'three'")
    save(page, "09-three-views")
    assert page.locator(f"{VIEWER} figcaption").all_inner_texts() == ["Short axis", "HLA", "VLA"]
    planes = {which: canvas_image(page, which) for which in ("mri", "labels", "third")}
    for which, pixels in planes.items():
        assert (pixels.sum(axis=2) > 30).mean() > 0.5, f"{which} is not painted"
        box = page.locator(f"{VIEWER} canvas.cmrqc-sv-{which}").bounding_box()
        assert box["width"] > 100 and box["height"] > 100
    # 12 slices of 8 mm shown taller than 12 rows: interpolated rows, the true height in mm on screen.
    assert planes["labels"].shape[0] > 12 * 3
    hla_box = page.locator(f"{VIEWER} canvas.cmrqc-sv-labels").bounding_box()
    assert hla_box["height"] / hla_box["width"] == pytest.approx(12 * 8.0 / (200 * 1.8), rel=0.05)
    sa = planes["mri"]
    cyan = ((sa[..., 0] < 60) & (sa[..., 1] > 200) & (sa[..., 2] > 200)).mean(axis=1) > 0.9
    magenta = ((sa[..., 0] > 200) & (sa[..., 1] < 60) & (sa[..., 2] > 200)).mean(axis=0) > 0.9
    assert cyan.any() and magenta.any()  # the HLA plane across, the VLA plane down the short axis
    before = {which: yellow_rows(planes[which]) for which in ("labels", "third")}
    assert before["labels"] and before["third"]
    index = slice_shown(page)
    page.get_by_role("button", name="kernel step").click()
    page.wait_for_function(f"document.querySelector('{VIEWER}').dataset.slice === '{index + 1}'")
    save(page, "10-three-views-next-slice")
    for which in ("labels", "third"):
        after = yellow_rows(canvas_image(page, which))
        assert after and min(after) > max(before[which]), (which, before[which], after)
    # Zoomed, each view stays on the heart: the LV (red) near the middle of the short-axis frame.
    page.get_by_role("button", name="zoom").click()
    zoomed = f"document.querySelector('{VIEWER} canvas.cmrqc-sv-mri').style.left.startsWith('-')"
    page.wait_for_function(zoomed)
    save(page, "11-three-views-zoomed")
    png = page.locator(f"{VIEWER} figure").first.screenshot()
    frame = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    r, g, b = frame[..., 0], frame[..., 1], frame[..., 2]
    red = np.argwhere((r > g + 60) & (r > b + 60))
    assert len(red) > 100
    y, x = red.mean(axis=0) / frame.shape[:2]
    assert abs(x - 0.5) < 0.1 and abs(y - 0.5) < 0.1, (x, y)
    page.get_by_role("button", name="zoom").click()
    page.get_by_role("button", name="three views").click()
    page.wait_for_function(f"document.querySelector('{VIEWER}').dataset.mode === 'single'")
    assert not page.locator(f"{VIEWER} canvas.cmrqc-sv-third").is_visible()


def test_mosaic_never_shows_another_patients_volume_as_es(page):
    """A volume of another patient named as the other phase (a kernel bug, played by a button) is
    not painted: the ES half says whose images came; this patient's ES named again is painted."""
    viewer = page.locator(VIEWER)
    page.get_by_role("button", name="mosaic").click()
    page.wait_for_function(f"document.querySelector('{VIEWER}').dataset.mode === 'mosaic'")
    page.get_by_role("button", name="wrong ES").click()
    page.wait_for_function(f"document.querySelector('{VIEWER}').dataset.mosaicEs === 'refused'")
    save(page, "11-mosaic-wrong-es")
    note = page.locator(f"{VIEWER} .cmrqc-sv-note").nth(1)
    assert note.inner_text() == "Could not show ES: the images received are those of p8 ES."
    assert page.evaluate(f"document.querySelector('{VIEWER} canvas.cmrqc-sv-labels').width") == 1
    page.get_by_role("button", name="offer ES").click()
    page.wait_for_function(f"document.querySelector('{VIEWER}').dataset.mosaicEs.startsWith('12 ')")
    assert not note.is_visible()
    assert viewer.get_attribute("data-volume-id") == "0:ED:p7"
    page.get_by_role("button", name="mosaic").click()
    page.wait_for_function(f"document.querySelector('{VIEWER}').dataset.mode === 'single'")


def test_three_views_are_blanked_while_another_patient_loads(page):
    """Three views on, another patient named whose volume has not come: no canvas keeps a pixel
    of the patient before (all three are cleared); showing the case again paints all three."""
    page.get_by_role("button", name="three views").click()
    page.wait_for_function(f"document.querySelector('{VIEWER}').dataset.mode === 'three'")
    page.get_by_role("button", name="foreign").click()
    page.wait_for_function(f"document.querySelector('{VIEWER}').dataset.volumeId === ''")
    save(page, "12-three-views-foreign")
    for which in ("mri", "labels", "third"):
        assert canvas_image(page, which).max() == 0, f"{which} still shows the previous patient"
    page.get_by_role("button", name="show case").click()
    page.wait_for_function(f"document.querySelector('{VIEWER}').dataset.volumeId === '0:ED:p7'")
    for which in ("mri", "labels", "third"):
        assert canvas_image(page, which).max() > 50
    page.get_by_role("button", name="three views").click()
    page.wait_for_function(f"document.querySelector('{VIEWER}').dataset.mode === 'single'")


def test_three_views_click_places_the_planes(page):
    """In the three views, a click on the short axis moves both long-axis planes there, and a click
    on the HLA moves the short-axis slice (the kernel's index follows)."""
    page.get_by_role("button", name="three views").click()
    page.wait_for_function(f"document.querySelector('{VIEWER}').dataset.mode === 'three'")
    sa = page.locator(f"{VIEWER} canvas.cmrqc-sv-mri").bounding_box()
    page.mouse.click(sa["x"] + 0.25 * sa["width"], sa["y"] + 0.75 * sa["height"])
    page.wait_for_function(f"JSON.parse(document.querySelector('{VIEWER}').dataset.cross).vla < 60")
    cross = json.loads(page.locator(VIEWER).get_attribute("data-cross"))
    assert cross["vla"] == pytest.approx(50, abs=2) and cross["hla"] == pytest.approx(150, abs=2)
    hla = page.locator(f"{VIEWER} canvas.cmrqc-sv-labels").bounding_box()
    page.mouse.click(hla["x"] + 0.5 * hla["width"], hla["y"] + (2.5 / 12) * hla["height"])  # slice 3 of 12
    page.wait_for_function(f"document.querySelector('{VIEWER}').dataset.slice === '2'")
    page.wait_for_function("document.querySelector('.widget-inline-hbox input[type=number]').value === '2'")
    save(page, "13-three-views-clicked")
    page.get_by_role("button", name="three views").click()
    page.wait_for_function(f"document.querySelector('{VIEWER}').dataset.mode === 'single'")
