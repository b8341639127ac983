"""In real Chromium: the next patient painted at its key (issue 14) is never named as another patient.

The kernel announces what the patient keys will show; the browser paints it at the key and the
kernel's answer confirms it or paints its own choice. On the signed cohort (patient N's image has N
bright bars), a watcher in the page checks after every change and on every frame that the bars on
the canvas are the number of the patient the header and the title name (or that nothing is painted),
through a fast walk of patient keys; at rest the screen shows the kernel's choice.
"""

from __future__ import annotations

import numpy as np
import pytest
from synthetic import write_case, write_dataset
from test_right_patient_browser import AFFINES, VIEWER, bars, painted_grey, review_page

pytestmark = [pytest.mark.browser, pytest.mark.slow]

N_PATIENTS = 5

JS_WATCH = """(viewer) => {
  const el = document.querySelector(viewer), root = el.closest('.cmrqc-review');
  const w = (window.__watch = { checks: 0, frames: 0, blank: 0, wrong: [], keys: [] });
  const bright = (d, i) => d[i] > 200;
  function barsOnCanvas() {
    const c = el.querySelector('canvas.cmrqc-sv-mri');
    if (el.querySelector('.cmrqc-sv-panels').hidden || !c.width || !c.height) return 0;
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let row = 0, col = 0;
    const at = (x, y) => bright(d, (y * c.width + x) * 4);  // red channel, as bars() in Python
    for (let x = 0; x < c.width; x++) if (at(x, 1) && (x === 0 || !at(x - 1, 1))) row++;
    for (let y = 0; y < c.height; y++) if (at(1, y) && (y === 0 || !at(1, y - 1))) col++;
    return Math.max(row, col);
  }
  const text = (selector) => ((root.querySelector(selector) || {}).textContent || '').trim();
  function check(when) {
    w.checks++;
    const n = barsOnCanvas();
    if (!n) return void w.blank++;
    const header = text('.cmrqc-header .cmrqc-patient-name');
    const title = text('.cmrqc-title-case').split(' ')[0];
    if (header !== 'p' + n || title !== 'p' + n || el.dataset.patient !== 'p' + n)
      w.wrong.push({ when, bars: n, header, title, viewer: el.dataset.patient, id: el.dataset.volumeId });
  }
  (function frame() {
    requestAnimationFrame(() => {
      const ch = new MessageChannel();
      ch.port1.onmessage = () => { w.frames++; check('frame'); frame(); };
      ch.port2.postMessage(0);
    });
  })();
  const everything = { subtree: true, childList: true, characterData: true, attributes: true };
  new MutationObserver(() => check('change')).observe(root, everything);
  // After the viewer's own key listener: what the key painted at once.
  window.addEventListener('keydown', (e) => w.keys.push({ key: e.key, ahead: el.dataset.ahead === '1',
    patient: el.dataset.patient, bars: barsOnCanvas() }), true);
}"""

NOTEBOOK_EXTRA = """
def stale_order(_):
    screen.slice_view.announce = lambda moves: None  # the new order's announcement still on its way
    screen.state.register_order("p3 first", lambda state: [0, 2, 1, 3, 4])
    screen.state.order = "p3 first"
stale = w.Button(description="reorder, announce nothing")
stale.on_click(stale_order)
display(stale)
"""


@pytest.fixture(scope="module")
def page(tmp_path_factory, browser):
    """The review screen on the signed cohort, in Chromium, first patient painted, watcher on."""
    import test_right_patient_browser as right

    root = tmp_path_factory.mktemp("ahead")
    folders = [
        write_case(root / "data" / f"p{i + 1}", affine=AFFINES[i % 3], shape=(40, 32, 5 + i), stripes=i + 1)
        for i in range(N_PATIENTS)
    ]
    write_dataset(root, folders)
    code = right.NOTEBOOK_CODE
    right.NOTEBOOK_CODE = code + NOTEBOOK_EXTRA
    try:
        with review_page(browser, root, "cohort.json") as tab:
            tab.evaluate(JS_WATCH, VIEWER)
            yield tab
    finally:
        right.NOTEBOOK_CODE = code


def position(page) -> int:
    """The kernel's "patient N of 5" in the header, as a 0-based index."""
    return int(page.locator(".cmrqc-header .cmrqc-position").first.inner_text().split()[1]) - 1


def at_rest(page, index: int, file_order: bool = True) -> None:
    """Wait until the kernel's patient ``index`` is painted and, in file order, is "patient index + 1"
    with both neighbours kept in the browser."""
    name = f"p{index + 1}"
    neighbours = [f"/p{(index + d) % N_PATIENTS + 1}#" for d in (1, -1)] if file_order else []
    page.wait_for_function(
        """([s, name, neighbours]) => {
            const el = document.querySelector(s), kept = el.dataset.kept || '';
            return el.dataset.ready === '1' && el.dataset.ahead !== '1' && el.dataset.patient === name
              && (el.dataset.volumeId || '').endsWith('/' + name)
              && neighbours.every((n) => kept.includes(n));
        }""",
        arg=[VIEWER, name, neighbours],
        timeout=60_000,
    )
    if file_order:
        page.wait_for_function(
            "(text) => document.querySelector('.cmrqc-header .cmrqc-position').innerText.startsWith(text)",
            arg=f"patient {index + 1} of",
        )
    page.wait_for_timeout(300)  # the neighbours decoded
    assert bars(painted_grey(page)) == index + 1


def test_a_fast_walk_never_names_another_patient_than_the_pixels(page):
    """20 patient keys, some quick, some at rest: every frame's bars are the named patient's."""
    page.hover(f"{VIEWER} canvas.cmrqc-sv-mri")
    rng = np.random.default_rng(14)
    index, rested = 0, []
    at_rest(page, index)
    for i in range(20):
        key = ["n", "ArrowDown", "p", "ArrowUp"][int(rng.integers(4))] if i % 4 else "n"
        quick = i % 4 in (1, 2)  # two keys in quick succession, then a rest
        if not quick:
            at_rest(page, index)
            rested.append(len(page.evaluate("() => window.__watch.keys")))
        page.keyboard.press(key)
        index = (index + (1 if key in ("n", "ArrowDown") else -1)) % N_PATIENTS
        if quick:
            page.wait_for_timeout(int(rng.integers(0, 40)))
    at_rest(page, index)
    watch = page.evaluate("() => window.__watch")
    assert watch["wrong"] == [], watch["wrong"][:5]
    assert watch["frames"] > 20 and watch["checks"] > watch["blank"]
    # At rest the neighbours are held: each such key painted the next patient at once, by itself.
    painted_at_key = [watch["keys"][k] for k in rested]
    assert all(k["ahead"] and k["bars"] == int(k["patient"][1:]) for k in painted_at_key), painted_at_key


def test_a_stale_announcement_is_replaced_by_the_kernels_choice(page):
    """The order changes and its announcement has not come: the key paints p2, the kernel's p3 follows."""
    index = position(page)
    while index != 0:  # to p1, at rest
        page.keyboard.press("n")
        index = (index + 1) % N_PATIENTS
        at_rest(page, index)
    page.get_by_role("button", name="reorder, announce nothing").click()
    page.wait_for_timeout(500)
    page.keyboard.press("n")
    key = page.evaluate("() => window.__watch.keys.at(-1)")
    assert key["ahead"] and key["patient"] == "p2" and key["bars"] == 2  # what was announced, named so
    at_rest(page, 2, file_order=False)  # the kernel's choice in the new order: p3
    watch = page.evaluate("() => window.__watch")
    assert watch["wrong"] == [], watch["wrong"][:5]



def test_a_patient_key_typed_in_the_comment_box_moves_nothing(page):
    """"n" typed in the comment box is text: nothing is painted ahead, the patient stays."""
    before = page.locator(VIEWER).get_attribute("data-patient")
    box = page.locator(".cmrqc-comment textarea").first
    box.click()
    page.keyboard.type("nnp")
    page.wait_for_timeout(800)
    keys = page.evaluate("() => window.__watch.keys.slice(-3)")
    assert [k["ahead"] for k in keys] == [False, False, False]
    assert page.locator(VIEWER).get_attribute("data-patient") == before
    assert box.input_value().endswith("nnp")
    page.keyboard.press("Escape")
    watch = page.evaluate("() => window.__watch")
    assert watch["wrong"] == [], watch["wrong"][:5]
