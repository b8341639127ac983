"""Cohort metrics: CSV rows, resume, broken cases, process pool, Dask, ordering and the plot."""

from __future__ import annotations

import csv
import json
from types import SimpleNamespace

import pytest
from synthetic import write_case

from cmrqc_widgets.demo import DEMO_BROKEN, make_demo_cohort
from cmrqc_widgets.errors import CmrqcError, DatasetError
from cmrqc_widgets.qc import cohort
from cmrqc_widgets.qc.cohort import (
    COLUMNS,
    cohort_metrics,
    flagged_patients,
    list_patients,
    metrics_by_patient,
    plot_cohort,
    read_metrics,
    suspicion_order,
    suspicion_queue,
)
from cmrqc_widgets.qc.metrics import metrics_for_patient
from cmrqc_widgets.qc.score import is_flagged
from cmrqc_widgets.store import QCStore


def truncate(path, keep=60):
    path.write_bytes(path.read_bytes()[:keep])


@pytest.fixture
def folder(tmp_path):
    """Three phantom patients, the second with a truncated ES label file."""
    root = tmp_path / "cohort"
    for name in ("p1", "p2", "p3"):
        write_case(root / name)
    truncate(root / "p2" / "seg_lvsa_SR_ES.nii.gz")
    (root / ".hidden").mkdir()
    return root


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo cohort and its metrics CSV, computed once for the module."""
    root = tmp_path_factory.mktemp("demo")
    dataset = make_demo_cohort(root, "alice")
    run = cohort_metrics(dataset, root / "metrics.csv", progress=False)
    return dataset, run


def test_rows_and_columns(folder, tmp_path):
    """One row per patient and phase with the documented columns; a broken case is a row, not a crash."""
    out = tmp_path / "m.csv"
    run = cohort_metrics(folder, out, progress=False)
    assert [n.rsplit("/", 1)[-1] for n in run.processed] == ["p1", "p2", "p3"]
    assert run.errors == {} and run.skipped == []
    with open(out, newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == COLUMNS
        raw = list(reader)
    assert len(raw) == 6
    rows = {(r["patient"].rsplit("/", 1)[-1], r["phase"]): r for r in run.rows}
    assert rows[("p1", "ED")]["suspicion"] == 0.0
    assert rows[("p1", "ES")]["lv_ef"] == pytest.approx(58.7, abs=1.0)
    assert rows[("p2", "ES")]["failed_checks"].startswith("cannot read ES: ")
    assert rows[("p2", "ES")]["lv_ml"] is None
    assert rows[("p2", "ED")]["case_suspicion"] >= 10
    assert set(COLUMNS) == set(metrics_for_patient(folder / "p1").rows()[0])


def test_resume_skips_done_patients(folder, tmp_path):
    """A second run measures nothing; a new patient is the only one measured by the third run."""
    out = tmp_path / "m.csv"
    cohort_metrics(folder, out, progress=False)
    before = out.read_text()
    again = cohort_metrics(folder, out, progress=False)
    assert again.processed == []
    assert len(again.skipped) == 3
    assert out.read_text() == before
    write_case(folder / "p4")
    third = cohort_metrics(folder, out, progress=False)
    assert [p.rsplit("/", 1)[-1] for p in third.processed] == ["p4"]
    assert len(read_metrics(out)) == 8


def test_resume_after_a_crash_mid_write(folder, tmp_path):
    """A half-written last line and a patient with only one row are measured again, once."""
    out = tmp_path / "m.csv"
    cohort_metrics(folder, out, progress=False)
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:-1]) + lines[-1][:10])  # header + 5 rows + a torn 6th
    run = cohort_metrics(folder, out, progress=False)
    assert [p.rsplit("/", 1)[-1] for p in run.processed] == ["p3"]
    rows = read_metrics(out)
    assert len(rows) == 6
    assert sorted((r["patient"].rsplit("/", 1)[-1], r["phase"]) for r in rows)[-2:] == [
        ("p3", "ED"), ("p3", "ES")
    ]


def test_crash_of_one_case_warns_and_is_retried(folder, tmp_path, monkeypatch):
    """An unexpected error in one case warns, is left out of the CSV, and the run goes on."""
    real = cohort.metrics_for_patient

    def flaky(path, *args, **kwargs):
        if str(path).endswith("p1"):
            raise RuntimeError("boom")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(cohort, "metrics_for_patient", flaky)
    out = tmp_path / "m.csv"
    with pytest.warns(RuntimeWarning, match=r"Metrics of .*p1 failed \(RuntimeError: boom\)"):
        run = cohort_metrics(folder, out, progress=False)
    assert [k.rsplit("/", 1)[-1] for k in run.errors] == ["p1"]
    assert len(run.processed) == 2
    monkeypatch.setattr(cohort, "metrics_for_patient", real)
    retry = cohort_metrics(folder, out, progress=False)
    assert [p.rsplit("/", 1)[-1] for p in retry.processed] == ["p1"]


def test_dataset_file_source(folder, tmp_path):
    """A dataset file's keys are the patients, written as they appear in the file."""
    dataset = tmp_path / "cohort.json"
    keys = [str(folder / "p3"), str(folder / "p1")]
    dataset.write_text(json.dumps({k: {"ED_Comments": "", "ES_Comments": ""} for k in keys}))
    assert [k for k, _ in list_patients(dataset)] == keys
    run = cohort_metrics(dataset, tmp_path / "m.csv", progress=False)
    assert run.processed == keys


def test_relative_keys_are_under_the_data_root(tmp_path):
    """Relative dataset keys are folders under the data root the dataset file lives in."""
    write_case(tmp_path / "cases" / "p1")
    dataset = QCStore(tmp_path, "alice").create("rel.json", ["cases/p1"]).path
    assert list_patients(dataset) == [("cases/p1", tmp_path.resolve() / "cases" / "p1")]
    assert list_patients(dataset, root=tmp_path / "x")[0][1] == tmp_path / "x" / "cases" / "p1"
    run = cohort_metrics(dataset, tmp_path / "m.csv", progress=False)
    assert [r["failed_checks"] for r in run.rows] == ["", ""]


def test_bad_source_and_foreign_csv(tmp_path, folder):
    """A missing source and an output CSV of another kind are clear errors."""
    with pytest.raises(DatasetError, match="neither a dataset file nor a folder"):
        cohort_metrics(tmp_path / "nowhere", tmp_path / "m.csv", progress=False)
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    with pytest.raises(CmrqcError, match="not a metrics file with the expected columns"):
        cohort_metrics(folder, other, progress=False)


def test_progress_bar(folder, tmp_path, capsys):
    """The progress bar goes to stderr."""
    cohort_metrics(folder, tmp_path / "m.csv", progress=True)
    assert "cmrqc metrics" in capsys.readouterr().err


def test_process_pool(folder, tmp_path):
    """workers=2 measures the same rows in worker processes."""
    serial = cohort_metrics(folder, tmp_path / "a.csv", progress=False)
    pooled = cohort_metrics(folder, tmp_path / "b.csv", workers=2, progress=False)
    key = lambda r: (r["patient"], r["phase"])  # noqa: E731
    assert sorted(pooled.rows, key=key) == sorted(serial.rows, key=key)


def test_dask_cluster(folder, tmp_path):
    """With a scheduler address or a Client, the cases run on a Dask cluster."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
    ) as cluster:
        run = cohort_metrics(folder, tmp_path / "a.csv", scheduler=cluster.scheduler_address, progress=False)
        assert len(run.processed) == 3
        with distributed.Client(cluster) as client:
            write_case(folder / "p4")
            more = cohort_metrics(folder, tmp_path / "a.csv", scheduler=client, progress=False)
            assert [p.rsplit("/", 1)[-1] for p in more.processed] == ["p4"]
        write_case(folder / "p5")
        last = cohort_metrics(folder, tmp_path / "a.csv", scheduler=cluster, progress=False)
        assert [p.rsplit("/", 1)[-1] for p in last.processed] == ["p5"]
    assert len(read_metrics(tmp_path / "a.csv")) == 10


def test_unreachable_scheduler(folder, tmp_path, monkeypatch):
    """A scheduler that does not answer is one clear error."""
    pytest.importorskip("distributed")
    monkeypatch.setattr(cohort, "DASK_CONNECT_TIMEOUT", "1s")
    with pytest.raises(CmrqcError, match=r"Cannot connect to the Dask scheduler at tcp://127\.0\.0\.1:9"):
        cohort_metrics(folder, tmp_path / "a.csv", scheduler="tcp://127.0.0.1:9", progress=False)


def test_demo_broken_cases_come_first(demo):
    """On the demo cohort every broken patient ranks before every normal one, and only they are flagged."""
    _, run = demo
    order = [p.rsplit("/", 1)[-1] for p in suspicion_order(run.rows)]
    assert len(order) == 10
    assert set(order[: len(DEMO_BROKEN)]) == set(DEMO_BROKEN)
    scores = {r["patient"].rsplit("/", 1)[-1]: r["case_suspicion"] for r in run.rows}
    assert all(is_flagged(scores[p]) for p in order[: len(DEMO_BROKEN)])
    assert not any(is_flagged(scores[p]) for p in order[len(DEMO_BROKEN) :])


def test_suspicion_order_accepts_reports_and_dataframes(demo):
    """suspicion_order takes rows, CaseReports or a DataFrame; ties keep their order."""
    pd = pytest.importorskip("pandas")
    _, run = demo
    assert suspicion_order(pd.DataFrame(run.rows)) == suspicion_order(run.rows)
    rows = [
        {"patient": "a", "phase": "ED", "suspicion": 0, "case_suspicion": 0},
        {"patient": "b", "phase": "ED", "suspicion": 3},
        {"patient": "c", "phase": "ED", "suspicion": 0},
    ]
    assert suspicion_order(rows) == ["b", "a", "c"]


def test_queue_helpers(demo):
    """flagged_patients, metrics_by_patient and the review-queue order built from the rows."""
    dataset, run = demo
    flagged = [p.rsplit("/", 1)[-1] for p in flagged_patients(run.rows)]
    assert set(flagged) == set(DEMO_BROKEN)
    table = metrics_by_patient(run.rows)
    assert set(table[run.rows[0]["patient"]]) == {"ED", "ES"}

    state = SimpleNamespace(patients=[*json.loads(dataset.read_text()), "/not/measured"])  # as ReviewState
    order = suspicion_queue(run.rows)(state)
    assert sorted(order) == list(range(11))
    first = [state.patients[i].rsplit("/", 1)[-1] for i in order[: len(DEMO_BROKEN)]]
    assert set(first) == set(DEMO_BROKEN)
    assert order[-1] == 10


def test_plot_cohort(demo):
    """EF vs EDV: normal patients as dots, flagged ones marked and named; patients without EF counted."""
    _, run = demo
    ax = plot_cohort(run.rows)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0].startswith("not flagged (5)")
    assert labels[1].startswith("flagged (")
    names = {t.get_text() for t in ax.texts}
    assert {"demo003", "demo007"} <= names
    assert "without EF not shown" in ax.get_title()
    assert ax.get_xlabel() == "LV end-diastolic volume (ml)"
    with pytest.raises(ValueError, match="ventricle must be"):
        plot_cohort(run.rows, ventricle="LA")
