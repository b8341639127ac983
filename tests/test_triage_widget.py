"""Triage in the review screen: the metrics strip, "most suspicious first" and the "flagged" filter."""

from __future__ import annotations

import threading
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from synthetic import REVIEWER

from cmrqc_widgets.demo import DEMO_BROKEN, make_demo_cohort
from cmrqc_widgets.qc.cohort import COLUMNS, cohort_metrics, read_metrics
from cmrqc_widgets.qc.metrics import metrics_for_patient
from cmrqc_widgets.widgets import ReviewWidget
from cmrqc_widgets.widgets import summary as summary_module
from cmrqc_widgets.widgets import triage as triage_module
from cmrqc_widgets.widgets.metrics_strip import FAILED_COLOUR
from cmrqc_widgets.widgets.queue import patient_name
from cmrqc_widgets.widgets.summary import CaseSummary, metrics_csv_for

USER = REVIEWER
BROKEN = set(DEMO_BROKEN)


def names(w: ReviewWidget, indices) -> list[str]:
    return [patient_name(w.state.patients[i]) for i in indices]


def listed(w: ReviewWidget) -> list[str]:
    """Patient names in the patient list, top to bottom."""
    return names(w, [value for _, value in w.patient_list.options])


def test_broken_demo_cases_come_first(widget: ReviewWidget) -> None:
    """With "most suspicious first" the deliberately broken demo cases lead the queue and the list."""
    w = widget
    assert ("most suspicious first", "suspicion") in w.order_dropdown.options
    assert w.wait_idle()
    assert "5 flagged" in w.metrics_strip.status.value
    w.order_dropdown.value = "suspicion"
    assert w.state.order == "suspicion"
    assert set(names(w, w.state.queue[:5])) == BROKEN
    assert set(listed(w)[:5]) == BROKEN and len(listed(w)) == 10
    w.order_dropdown.value = "file"
    assert names(w, w.state.queue) == [f"demo{i:03d}" for i in range(1, 11)]


def test_queue_resorts_when_suspicion_is_ready(widget: ReviewWidget, monkeypatch) -> None:
    """Chosen while measuring, the order is re-sorted once every patient is known; progress shows n/N."""
    w = widget
    assert w.wait_idle()
    gate = threading.Event()
    real = summary_module.metrics_for_patient

    def slow(*args, **kwargs):
        gate.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(summary_module, "metrics_for_patient", slow)
    monkeypatch.setattr(w.triage, "cache", None)  # the strip's patient measured the slow way too
    w.triage.forget()  # as if the dataset had just been opened
    w.state.open_dataset("demo.json")
    assert "computing suspicion… 0/10" in w.metrics_strip.status.value
    w.order_dropdown.value = "suspicion"
    assert w.state.queue == list(range(10))  # nothing known yet: file order
    gate.set()
    assert w.wait_idle()
    assert set(names(w, w.state.queue[:5])) == BROKEN
    assert "computing" not in w.metrics_strip.status.value


def test_flagged_filter_keeps_cases_with_failed_checks(widget: ReviewWidget) -> None:
    """The "flagged" filter holds exactly the cases with a failed check; next/prev stay within it."""
    w = widget
    assert w.wait_idle()
    w.filter_dropdown.value = "flagged"
    assert set(names(w, w.state.queue)) == BROKEN
    w.state.jump_to("demo003")
    visited = []
    for _ in range(5):
        w.next_patient_button.click()
        visited.append(patient_name(w.state.patient))
    assert set(visited) == BROKEN and visited[-1] == "demo003"
    w.order_dropdown.value = "suspicion"
    assert set(names(w, w.state.queue)) == BROKEN


def test_strip_of_a_normal_case(widget: ReviewWidget) -> None:
    """A normal case shows LV/RV EDV, ESV, EF and myocardial mass, and no failed check."""
    w = widget
    w.state.jump_to("demo002")
    assert w.wait_idle()
    text = w.metrics_strip.html.value
    for word in ("LV", "RV", "EDV", "ESV", "EF", "Myo mass", " ml", " g", "no failed check"):
        assert word in text, word
    assert "cmrqc-failed-check" not in text
    summary = w.triage.current
    report = metrics_for_patient(w.state.patient_dir())
    assert summary.lv[2] == pytest.approx(report.lv.ef) and 40 < summary.lv[2] < 80
    assert f"{report.lv.edv_ml:.0f} ml" in text


def test_strip_of_broken_cases_highlights_failed_checks(widget: ReviewWidget) -> None:
    """Failed checks are listed in plain words, in red; an unreadable phase shows its check, no crash."""
    w = widget
    w.state.jump_to("demo007")
    assert w.wait_idle()
    text = w.metrics_strip.html.value
    assert "failed check" in text and FAILED_COLOUR in text
    assert "LV and RV labels look swapped" in text and "cmrqc-failed-check" in text
    w.state.jump_to("demo009")
    w.state.set_phase("ES")
    assert w.wait_idle()
    text = w.metrics_strip.html.value
    assert "cannot read ES" in text and "truncated or corrupt gzip" in text
    assert "EF —" in text  # no ejection fraction without ES
    assert "truncated or corrupt" in w.slice_view.message  # the screen still works around it
    w.reject_button.click()
    assert w.state.decision == "reject"


def test_clicking_a_failed_check_shows_its_slice(widget: ReviewWidget) -> None:
    """Each failed check that names a slice has a button naming it; a click shows that phase and slice."""
    w = widget
    w.state.jump_to("demo007")  # LV and RV swapped: named on its worst mid slice
    assert w.wait_idle()
    buttons = {b.description: b for b in w.metrics_strip.jumps.children}
    swapped = next(
        m for m in w.state.triage.current.failed if m.startswith("ED: LV and RV labels look swapped")
    )
    phase, k = w.state.triage.current.where[w.state.triage.current.failed.index(swapped)]
    assert phase == "ED" and k is not None
    first = k + 1
    assert f"ED slice {first}" in buttons
    assert swapped in buttons[f"ED slice {first}"].tooltip  # hovering names the check failing there
    w.state.set_phase("ES")
    w.state.slice = 0
    buttons[f"ED slice {first}"].click()
    assert w.state.phase == "ED"
    assert w.state.slice == first - 1
    assert w.slice_view.slice_index == first - 1


def test_metrics_never_run_on_the_patient_switch(widget: ReviewWidget, monkeypatch) -> None:
    """Patient switches never measure on the main thread; the strip fills from the background."""
    w = widget
    assert w.wait_idle()
    threads = []

    def spying(real):
        def spy(*args, **kwargs):
            threads.append(threading.current_thread().name)
            return real(*args, **kwargs)

        return spy

    for module, name in ((summary_module, "metrics_for_patient"), (triage_module, "case_metrics")):
        monkeypatch.setattr(module, name, spying(getattr(module, name)))
    w.triage.forget([w.state.patients[1]])
    w.next_patient_button.click()
    assert w.triage.current_patient == w.state.patients[1]
    assert w.wait_idle() and w.triage.current is not None
    assert threads == ["cmrqc-triage"]
    measured = w.triage.n_measured
    w.prev_patient_button.click()
    w.next_patient_button.click()
    assert w.triage.current is not None  # cached per patient: shown at once, not measured again
    assert w.wait_idle() and w.triage.n_measured == measured


def test_slice_moves_do_not_redraw_the_strip(widget: ReviewWidget) -> None:
    """The strip is redrawn for a new patient, never for a slice or phase move."""
    w = widget
    assert w.wait_idle()
    renders = w.metrics_strip.n_renders
    for _ in range(3):
        w.slice_controls.next_slice_button.click()
    w.phase_toggle.value = "ES"
    assert w.metrics_strip.n_renders == renders


def test_suspicion_read_from_the_metrics_csv(root: Path) -> None:
    """A metrics CSV beside the dataset gives the suspicion; only the patients it misses are measured."""
    dataset = root / "users" / USER / "demo.json"
    out = metrics_csv_for(dataset)
    assert out.name == "demo.metrics.csv"
    cohort_metrics(dataset, out, progress=False)
    rows = [r for r in read_metrics(out) if not r["patient"].endswith(("demo001", "demo002"))]
    with open(out, "w", encoding="utf-8") as handle:
        handle.write(",".join(COLUMNS) + "\n")
        for row in rows:
            values = ["" if row[c] is None else str(row[c]) for c in COLUMNS]
            handle.write(",".join(f'"{v}"' for v in values) + "\n")
    w = ReviewWidget(root=root, user=USER)
    assert w.wait_idle()
    assert w.triage.source == "demo.metrics.csv + measured here"
    assert w.triage.n_measured == 2  # demo001 and demo002, missing from the file
    w.order_dropdown.value = "suspicion"
    assert set(names(w, w.state.queue[:5])) == BROKEN
    w.state.jump_to("demo007")
    assert "LV and RV labels look swapped" in w.metrics_strip.html.value
    w.close()


def test_summary_from_csv_rows_matches_the_report(cohort: Path) -> None:
    """A patient's CSV rows summarise to the same figures and failed checks as its report."""
    for name in ("demo004", "demo007", "demo009"):
        report = metrics_for_patient(cohort / "demo_cohort" / name)
        direct = CaseSummary.from_report(report)
        rows = {row["phase"]: row for row in report.rows()}
        from_rows = CaseSummary.from_rows(rows)
        assert from_rows.flagged == direct.flagged == (name in BROKEN)
        assert from_rows.suspicion == pytest.approx(direct.suspicion)
        assert set(from_rows.failed) == set(direct.failed)
        rows_where = dict(zip(from_rows.failed, from_rows.where, strict=True))
        assert rows_where == dict(zip(direct.failed, direct.where, strict=True))
        for a, b in zip(from_rows.lv + from_rows.rv, direct.lv + direct.rv, strict=True):
            assert (a is None and b is None) or a == pytest.approx(b, abs=0.06)


KERNEL_TRIAGE = """
import asyncio
from cmrqc_widgets import ReviewWidget

w = ReviewWidget()
w.order_dropdown.value = "suspicion"
"""

KERNEL_WAIT = """
for _ in range(200):
    if w.triage.ready and w.triage.current is not None:
        break
    await asyncio.sleep(0.05)
print("ready:", w.triage.ready, "strip:", "EDV" in w.metrics_strip.html.value)
print("first:", sorted(p.rsplit("/", 1)[-1] for p in (w.state.patients[i] for i in w.state.queue[:5])))
print("log:", len(w.log_output.outputs))
"""


@pytest.mark.slow
def test_results_arrive_through_the_kernel_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In a real kernel the strip fills and the queue re-sorts by themselves, between messages."""
    make_demo_cohort(tmp_path, "erin", shape=(64, 64, 6))
    monkeypatch.setenv("CMRQC_ROOT", str(tmp_path))
    monkeypatch.setenv("CMRQC_USER", "erin")
    monkeypatch.delenv("JUPYTERHUB_USER", raising=False)
    cells = [nbformat.v4.new_code_cell(KERNEL_TRIAGE), nbformat.v4.new_code_cell(KERNEL_WAIT)]
    notebook = nbformat.v4.new_notebook(cells=cells)
    NotebookClient(notebook, timeout=600, kernel_name="python3").execute()
    text = "".join(o.get("text", "") for cell in notebook.cells for o in cell.outputs)
    assert "ready: True strip: True" in text
    assert f"first: {sorted(BROKEN)}" in text
    assert "log: 0" in text
