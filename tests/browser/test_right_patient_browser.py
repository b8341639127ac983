"""In real Chromium: the pixels painted are those of the patient the title names, or none at all.

Voilà renders a small notebook with the review screen on five synthetic patients in different
orientations; patient N's image carries N bright bars outside the heart (``synthetic.sign``), so
counting the bars on the painted canvas tells whose image is on screen. A button makes the kernel
name another case without sending its volume (what a failed preparation once did): the browser
must blank the images and say so rather than keep painting the previous patient.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import nbformat
import numpy as np
import pytest
from conftest import stop_group
from synthetic import REVIEWER, write_case, write_dataset

pytestmark = [pytest.mark.browser, pytest.mark.slow]


VIEWER = ".cmrqc-slice-viewer"
N_PATIENTS = 5
AFFINES = [  # patient i has AFFINES[i % 3], shape (40, 32, 5 + i) and i + 1 bars
    np.diag([1.8, 1.8, 8.0, 1.0]),
    np.diag([-1.8, -1.8, 8.0, 1.0]),
    np.array([[0, -1.8, 0, 0], [-1.8, 0, 0, 0], [0, 0, 8.0, 0], [0, 0, 0, 1.0]]),
]

NOTEBOOK_CODE = """\
import ipywidgets as w
from cmrqc_widgets.widgets import ReviewWidget

screen = ReviewWidget(root={root!r}, user={user!r}, dataset={dataset!r})
desync = w.Button(description="name another case")
desync.on_click(lambda _: screen.slice_view.set_trait("case_id", "999:ES:/elsewhere/patient042"))
forget = w.Button(description="forget read cases")
forget.on_click(lambda _: (screen.state.prefetcher.clear(), screen.state.cache.clear()))
display(w.VBox([desync, forget, screen]))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def review_page(browser, root: Path, dataset: str):
    """Voilà serving the review screen on ``dataset`` of ``root``, and a page with its first case painted."""
    code = NOTEBOOK_CODE.format(root=str(root), user=REVIEWER, dataset=dataset)
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, root / "notebook.ipynb")
    port = free_port()
    log = (root / "voila.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "voila", "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1",
         "--show_tracebacks=True", "notebook.ipynb"],
        cwd=root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    tab = None
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"Voilà exited early; see {root / 'voila.log'}.")
            try:  # an HTTP answer from Voilà itself (a static file: "/" would start a kernel)
                static = f"http://127.0.0.1:{port}/voila/static/extension.js"
                urllib.request.urlopen(static, timeout=5).close()
                break
            except urllib.error.HTTPError:
                break
            except (OSError, http.client.HTTPException):
                if time.monotonic() > deadline:
                    pytest.fail(f"Voilà did not answer in 60 s; see {root / 'voila.log'}.")
                time.sleep(0.3)
        tab = browser.new_page(viewport={"width": 1600, "height": 1200})
        tab.set_default_timeout(60_000)
        tab.goto(f"http://127.0.0.1:{port}/", timeout=120_000)
        tab.wait_for_selector(f'{VIEWER}[data-ready="1"]', timeout=120_000)
        yield tab
    finally:
        if tab is not None:
            tab.close()
        stop_group(process, timeout=10)
        log.close()


@pytest.fixture(scope="module")
def page(tmp_path_factory, browser):
    """The review screen on the signed cohort, in Chromium, first patient painted."""
    root = tmp_path_factory.mktemp("right_patient")
    folders = [
        write_case(root / "data" / f"p{i + 1}", affine=AFFINES[i % 3], shape=(40, 32, 5 + i), stripes=i + 1)
        for i in range(N_PATIENTS)
    ]
    write_dataset(root, folders)
    with review_page(browser, root, "cohort.json") as tab:
        yield tab


def painted_grey(page) -> np.ndarray:
    """The MRI canvas as painted (its own pixels, one per voxel), red channel."""
    data = page.evaluate(
        """(selector) => {
            const c = document.querySelector(selector + ' canvas.cmrqc-sv-mri');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            return {w: c.width, h: c.height, red: Array.from(d.filter((_, i) => i % 4 === 0))};
        }""",
        VIEWER,
    )
    return np.array(data["red"], np.uint8).reshape(data["h"], data["w"])


def bars(grey: np.ndarray) -> int:
    """Bright bars along the canvas's second row or second column (whichever crosses them)."""
    bright = grey > 200
    return max(
        int(np.count_nonzero(np.diff(line.astype(np.int8)) == 1) + line[0])
        for line in (bright[1], bright[:, 1])
    )


def named_patient(page) -> str:
    """The patient the title names ("p3" of "... · p3 ED")."""
    return page.locator(".cmrqc-title-case").first.inner_text().split()[0]


def test_the_pixels_painted_belong_to_the_patient_in_the_title(page):
    """Next through every patient: the bars counted on the canvas are the titled patient's number."""
    seen = []
    for _ in range(N_PATIENTS):
        name = named_patient(page)
        page.wait_for_function(
            """([selector, name]) => {
                const el = document.querySelector(selector);
                return el.dataset.ready === '1' && (el.dataset.volumeId || '').endsWith('/' + name);
            }""",
            arg=[VIEWER, name],
        )
        assert bars(painted_grey(page)) == int(name[1:]), name
        if name == "p1":  # RAS file: radiological short axis, letters on the image edges
            edges = {
                edge: page.locator(f"{VIEWER} .cmrqc-sv-or[data-edge={edge}]").first.inner_text()
                for edge in ("left", "right", "top", "bottom")
            }
            assert edges == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
        seen.append(name)
        page.locator("button").filter(has_text=re.compile(r"^\s*Next\s*$")).first.click()
        page.wait_for_function(
            "(name) => !document.querySelector('.cmrqc-title-case').innerText.startsWith(name + ' ')",
            arg=name,
        )
    assert sorted(seen) == [f"p{i + 1}" for i in range(N_PATIENTS)]


def test_a_kept_volume_of_a_file_since_changed_is_not_painted(page):
    """The next patient's volume is kept in the browser; its file changes: Next paints the new file."""
    name = named_patient(page)
    following = int(name[1:]) % N_PATIENTS + 1
    folder = Path(page.evaluate("(s) => document.querySelector(s).dataset.volumeKey", VIEWER))
    folder = Path(str(folder).split(":", 1)[1].split("#")[0]).parent / f"p{following}"
    page.wait_for_function(  # sent ahead once the case was painted
        "([s, p]) => (document.querySelector(s).dataset.kept || '').split('\\n').some((k) => k.includes(p))",
        arg=[VIEWER, f"{folder}#"],
    )
    kept = page.evaluate("(s) => document.querySelector(s).dataset.kept", VIEWER).split("\n")
    stale = {k for k in kept if f"{folder}#" in k}
    i = following - 1
    write_case(folder, affine=AFFINES[i % 3], shape=(40, 32, 5 + i), stripes=7)  # was `following` bars
    try:
        page.get_by_role("button", name="forget read cases").click()  # the kernel reads files afresh
        page.wait_for_timeout(500)
        next_patient(page, name)
        page.wait_for_function(
            "([s, n]) => { const el = document.querySelector(s);"
            " return el.dataset.ready === '1' && (el.dataset.volumeId || '').endsWith('/' + n); }",
            arg=[VIEWER, f"p{following}"],
        )
        assert page.locator(VIEWER).get_attribute("data-volume-key") not in stale
        assert bars(painted_grey(page)) == 7
    finally:
        write_case(folder, affine=AFFINES[i % 3], shape=(40, 32, 5 + i), stripes=following)


JS_WATCH_ORDER = """(viewer) => {
  const el = document.querySelector(viewer), panel = document.querySelector('.cmrqc-volume3d');
  const volume0 = el.dataset.volumeId, status0 = panel.innerText, t = (window.__order = {});
  new MutationObserver(() => {
    if (!t.painted2d && el.dataset.ready === '1' && el.dataset.volumeId && el.dataset.volumeId !== volume0)
      t.painted2d = performance.now();
  }).observe(el, { attributes: true });
  new MutationObserver(() => {
    if (!t.drawn3d && panel.innerText !== status0) t.drawn3d = performance.now();
  }).observe(panel, { subtree: true, childList: true, characterData: true, attributes: true });
}"""


def test_with_3d_open_the_2d_switch_is_painted_before_3d(page):
    """3D open, Next: the new patient's 2D images are painted before the 3D view changes."""
    page.locator(".cmrqc-volume3d button").filter(has_text="Show 3D").first.click()
    try:
        page.wait_for_function(
            "() => /voxels/.test(document.querySelector('.cmrqc-volume3d').innerText)", timeout=60_000
        )
        page.wait_for_timeout(1500)  # the 3D view of this case drawn and settled
        page.evaluate(JS_WATCH_ORDER, VIEWER)
        next_patient(page, named_patient(page))
        page.wait_for_function("() => window.__order.painted2d && window.__order.drawn3d", timeout=60_000)
        order = page.evaluate("() => window.__order")
        assert order["painted2d"] < order["drawn3d"]
    finally:
        page.locator(".cmrqc-volume3d button").filter(has_text="Hide 3D").first.click()


def test_a_volume_of_another_case_is_not_painted(page):
    """The kernel names a case whose volume never came: the canvases go, a sentence names the case."""
    page.get_by_role("button", name="name another case").click()
    message = page.locator(f"{VIEWER} .cmrqc-sv-message")
    message.wait_for(state="visible")
    assert message.inner_text().startswith("Could not show patient042 ES: the images received are those of p")
    assert not page.locator(f"{VIEWER} .cmrqc-sv-panels").is_visible()
    assert page.locator(VIEWER).get_attribute("data-volume-id") == ""


def next_patient(page, name: str) -> None:
    """Click Next and wait until the title names another patient than ``name``."""
    page.locator("button").filter(has_text=re.compile(r"^\s*Next\s*$")).first.click()
    page.wait_for_function(
        "(name) => !document.querySelector('.cmrqc-title-case').innerText.startsWith(name + ' ')", arg=name
    )


def test_real_patients_pixels_are_the_titled_patients(tmp_path_factory, browser):
    """Sunnybrook (real DICOM, converted by us): the unlabelled pixels painted equal the titled patient's."""
    from realdata import SUNNYBROOK, sunnybrook_patients

    from cmrqc_widgets.cases import load_case
    from cmrqc_widgets.cli import main
    from cmrqc_widgets.widgets.slice_viewer import pack_case

    patients = {p.name: p for p in sunnybrook_patients()}
    root = tmp_path_factory.mktemp("sunnybrook_browser")
    assert main(["dataset", "create", "sb", "--root", str(root), "--user", REVIEWER, str(SUNNYBROOK)]) == 0
    keys = {Path(k).name: k for k in json.loads((root / "users" / REVIEWER / "sb.json").read_text())}
    with review_page(browser, root, "sb.json") as tab:
        for _ in range(2):
            name = named_patient(tab)
            assert name in patients
            tab.wait_for_function(
                "([s, n]) => (document.querySelector(s).dataset.volumeId || '').endsWith('/' + n)",
                arg=[VIEWER, name],
            )
            case = load_case(keys[name], "ED")
            image, labels, shape, (low, high) = pack_case(case).volume
            k = int(tab.locator(VIEWER).get_attribute("data-slice"))
            sent = np.frombuffer(zlib.decompress(image), np.uint8).reshape(shape)[k].astype(float)
            expected = np.clip(np.round((sent - low) / max(high - low, 1e-6) * 255), 0, 255)
            unlabelled = np.frombuffer(zlib.decompress(labels), np.uint8).reshape(shape)[k] == 0
            shown = painted_grey(tab).astype(float)
            assert shown.shape == expected.shape
            assert np.abs(shown - expected)[unlabelled].max() <= 1, name
            next_patient(tab, name)


def test_upload_of_a_zipped_dicom_study_opens_its_cases(page, tmp_path):
    """A reviewer picks a zipped DICOM study in the upload button: its case opens, painted, pseudonymised."""
    pytest.importorskip("pydicom")
    import zipfile

    from synthetic import write_dicom_cine

    from cmrqc_widgets.cases.study import pseudonym

    write_dicom_cine(tmp_path / "dicom", frames=3)
    archive = tmp_path / "study.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted((tmp_path / "dicom").iterdir()):
            z.write(path, f"study/{path.name}")
    # The button opens the system file chooser (its <input type=file> is not in the page).
    with page.expect_file_chooser() as chooser:
        page.locator(".cmrqc-dicom-upload button.widget-upload").first.click()
    chooser.value.set_files(str(archive))
    status = page.locator(".cmrqc-upload-status")
    status.filter(has_text="1 case in upload-study.json (opened)").wait_for(timeout=120_000)
    name = pseudonym("PAT-0042")
    page.wait_for_function(
        """([selector, name]) => {
            const el = document.querySelector(selector);
            return el.dataset.ready === '1' && (el.dataset.volumeId || '').includes(name);
        }""",
        arg=[VIEWER, name],
    )
    assert named_patient(page).startswith(name)
    assert "PAT-0042" not in page.content()
    assert page.locator(".cmrqc-case-info").first.inner_text().count("GE Signa HDx") == 1
