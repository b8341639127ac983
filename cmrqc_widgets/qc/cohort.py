"""Metrics of a whole cohort: one CSV row per patient and phase, parallel, resumable.

:func:`cohort_metrics` measures every patient of a dataset file (or of a folder of patient
folders) with :func:`cmrqc_widgets.qc.metrics.metrics_for_patient` and appends the rows to a CSV
as each case finishes, so an interrupted run resumes where it stopped. It runs in this
process, in a local process pool (``workers > 1``) or on a Dask cluster (``scheduler``).
:func:`suspicion_order` puts the most suspicious patients first for the review queue, and
:func:`plot_cohort` draws EF against EDV with flagged cases marked.
"""

from __future__ import annotations

import csv
import io
import os
import sys
import warnings
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CmrqcError, DatasetError
from .metrics import CaseReport, Thresholds, metrics_for_patient

__all__ = [
    "COLUMNS",
    "CohortRun",
    "cohort_metrics",
    "flagged_patients",
    "list_patients",
    "metrics_by_patient",
    "plot_cohort",
    "read_metrics",
    "suspicion_order",
    "suspicion_queue",
]

COLUMNS: tuple[str, ...] = (
    "patient", "phase", "lv_ml", "rv_ml", "myo_ml", "myo_mass_g",
    "lv_edv_ml", "lv_esv_ml", "lv_sv_ml", "lv_ef", "rv_edv_ml", "rv_esv_ml", "rv_sv_ml", "rv_ef",
    "suspicion", "case_suspicion", "failed_checks",
)  # fmt: skip
"""Columns of the metrics CSV, in order (volumes in ml, mass in g, EF in percent)."""

_TEXT = {"patient", "phase", "failed_checks"}
DASK_CONNECT_TIMEOUT = "20s"
"""How long to wait for a Dask scheduler before giving up."""


@dataclass
class CohortRun:
    """What one :func:`cohort_metrics` call did.

    Attributes
    ----------
    out_csv : Path
    processed : list of str
        Patients measured (and written) by this run.
    skipped : list of str
        Patients already complete in the CSV, not measured again.
    errors : dict
        Patient -> sentence, for patients whose measurement itself crashed. They are not
        written, so the next run tries them again. (An unreadable case is not an error: it is
        a row with "cannot read ..." in ``failed_checks``.)
    rows : list of dict
        Every row of the CSV after the run, numbers parsed (see :func:`read_metrics`).
    """

    out_csv: Path
    processed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)


def list_patients(
    source: str | os.PathLike[str], root: str | os.PathLike[str] | None = None
) -> list[tuple[str, Path]]:
    """Patients of ``source`` as ``(name in the CSV, folder)`` pairs, in order.

    ``source`` is a dataset file (its keys, as written there) or a folder whose sub-folders
    are patients (their absolute paths, sorted; hidden entries skipped). Relative keys of a
    dataset file are folders under the data root, as in the review screen: ``root`` if given,
    else the root the file lives in (``<root>/users/<user>/<name>.json``), else the current
    folder.
    """
    path = Path(source).expanduser()
    if path.is_dir():
        return [
            (str(p.resolve()), p.resolve())
            for p in sorted(path.iterdir())
            if p.is_dir() and not p.name.startswith(".")
        ]
    if path.is_file():
        from ..store import read_dataset_file

        keys = list(read_dataset_file(path))
        if root is not None:
            base = Path(root).expanduser()
        elif path.resolve().parent.parent.name == "users":
            base = path.resolve().parent.parent.parent
        else:
            base = Path.cwd()
        return [(key, base / Path(key).expanduser()) for key in keys]  # absolute keys stay as they are
    raise DatasetError(f"{path} is neither a dataset file nor a folder of patient folders.")


def _parse(row: Mapping[str, Any]) -> dict[str, Any]:
    parsed: dict[str, Any] = {}
    for key, value in row.items():
        if key in _TEXT or value is None:
            parsed[key] = "" if value is None and key in _TEXT else value
        elif value == "":
            parsed[key] = None
        else:
            parsed[key] = float(value)
    return parsed


def read_metrics(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Rows of a metrics CSV with numbers as floats and empty cells as ``None``."""
    with open(path, newline="", encoding="utf-8") as handle:
        return [_parse(row) for row in csv.DictReader(handle)]


def _resume(out: Path) -> set[str]:
    """Patients already complete in ``out``; drop a half-written tail left by a crash."""
    if not out.exists() or out.stat().st_size == 0:
        return set()
    text = out.read_text(encoding="utf-8")
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != COLUMNS:
        raise CmrqcError(
            f"{out} exists but is not a metrics file with the expected columns; "
            "choose another output file or remove it."
        )
    complete_text = text if text.endswith("\n") else text[: text.rfind("\n") + 1]
    rows = list(csv.DictReader(io.StringIO(complete_text)))
    phases: dict[str, set[str]] = {}
    for row in rows:
        phases.setdefault(row["patient"], set()).add(row["phase"])
    done = {p for p, seen in phases.items() if seen >= {"ED", "ES"}}
    if complete_text != text or len(done) != len(phases):
        # Rewrite without the unfinished patients, so they are measured once more, not twice.
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(r for r in rows if r["patient"] in done)
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_text(buffer.getvalue(), encoding="utf-8")
        os.replace(tmp, out)
    return done


def _measure(key: str, folder: str, layout: Any, thresholds: Thresholds | None) -> list[dict[str, Any]]:
    """Rows of one patient (runs in a worker process or on a Dask worker)."""
    return metrics_for_patient(folder, layout, thresholds, patient=key).rows()


def _results(todo, workers, scheduler, layout, thresholds):
    """Yield ``(patient, rows or None, error or None)`` as cases finish."""
    args = [(key, str(folder), layout, thresholds) for key, folder in todo]
    if scheduler is not None:
        yield from _dask_results(args, scheduler)
    elif workers > 1:
        import multiprocessing

        # forkserver: forking a process that runs threads (Jupyter, Voila) can deadlock.
        method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        ctx = multiprocessing.get_context(method)
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futures = {pool.submit(_measure, *a): a[0] for a in args}
            for future in as_completed(futures):
                yield _outcome(futures[future], future)
    else:
        for a in args:
            try:
                yield a[0], _measure(*a), None
            except Exception as exc:  # one crashing case must not end the run
                yield a[0], None, f"{type(exc).__name__}: {exc}"


def _outcome(key: str, future: Any) -> tuple[str, list[dict[str, Any]] | None, str | None]:
    try:
        return key, future.result(), None
    except Exception as exc:
        return key, None, f"{type(exc).__name__}: {exc}"


def _dask_results(args, scheduler):
    try:
        from distributed import Client
        from distributed import as_completed as dask_completed
    except ImportError:
        raise CmrqcError(
            "Running on a Dask cluster needs dask.distributed; install it with "
            "pip install 'cmrqc_widgets[dask]'."
        ) from None
    own = not hasattr(scheduler, "submit")  # an address or a cluster object, not a Client
    if own:
        try:
            client = Client(scheduler, timeout=DASK_CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            raise CmrqcError(f"Cannot connect to the Dask scheduler at {scheduler} ({exc}).") from None
    else:
        client = scheduler
    try:
        futures = {client.submit(_measure, *a, pure=False): a[0] for a in args}
        for future in dask_completed(list(futures)):
            yield _outcome(futures[future], future)
    finally:
        if own:
            client.close()


def cohort_metrics(
    source: str | os.PathLike[str],
    out_csv: str | os.PathLike[str],
    workers: int = 1,
    scheduler: Any = None,
    progress: bool = True,
    *,
    layout: Any = None,
    thresholds: Thresholds | None = None,
    root: str | os.PathLike[str] | None = None,
) -> CohortRun:
    """Measure every patient of ``source`` and append one row per patient and phase to ``out_csv``.

    Parameters
    ----------
    source : path
        A dataset file, or a folder of patient folders (see :func:`list_patients`).
    out_csv : path
        The metrics CSV (:data:`COLUMNS`). Patients already complete in it are skipped, so a
        second run only measures what is new or was interrupted.
    workers : int
        Local worker processes; 1 measures in this process.
    scheduler : str, distributed.Client or cluster, optional
        A Dask scheduler address (``"tcp://host:8786"``), a connected ``Client`` or a cluster
        object: the cases are measured on that cluster instead (the workers must see the case
        files and have cmrqc_widgets installed).
    progress : bool
        Show a tqdm progress bar on stderr.
    layout : str or Layout, optional
        File layout of the patients (default: detected per patient).
    thresholds : Thresholds, optional
        Rule limits and weights (default :class:`~cmrqc_widgets.qc.metrics.Thresholds`).
    root : path, optional
        Data root for relative patient keys (see :func:`list_patients`).

    Returns
    -------
    CohortRun

    Raises
    ------
    DatasetError
        If ``source`` is not a dataset file or a folder.
    CmrqcError
        If ``out_csv`` exists with other columns, or the Dask scheduler cannot be reached.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}.")
    from tqdm import tqdm  # not tqdm.auto: that pulls ipywidgets into a pure module

    out = Path(out_csv).expanduser()
    patients = list_patients(source, root)
    done = _resume(out)
    run = CohortRun(out_csv=out, skipped=[k for k, _ in patients if k in done])
    todo = [(k, f) for k, f in patients if k not in done]
    out.parent.mkdir(parents=True, exist_ok=True)
    new_file = not out.exists() or out.stat().st_size == 0
    with (
        open(out, "a", newline="", encoding="utf-8") as handle,
        tqdm(
            total=len(todo), desc="cmrqc metrics", unit="case", disable=not progress, file=sys.stderr
        ) as bar,
    ):
        writer = csv.DictWriter(handle, COLUMNS, lineterminator="\n")
        if new_file:
            writer.writeheader()
        flagged = 0
        for key, rows, error in _results(todo, workers, scheduler, layout, thresholds):
            bar.update(1)
            if error is not None:
                run.errors[key] = error
                warnings.warn(
                    f"Metrics of {key} failed ({error}); it is left out and retried next run.",
                    RuntimeWarning,
                    stacklevel=2,
                )
                continue
            # Both rows of a patient in one write: a crash never leaves half a patient behind.
            writer.writerows(rows)
            handle.flush()
            run.processed.append(key)
            flagged += any(r["suspicion"] for r in rows)
            bar.set_postfix(flagged=flagged)
    run.rows = read_metrics(out)
    return run


# --- using the rows -----------------------------------------------------------------------------


def _as_rows(rows_or_df: Any) -> list[Mapping[str, Any]]:
    if hasattr(rows_or_df, "to_dict") and hasattr(rows_or_df, "columns"):
        return list(rows_or_df.to_dict("records"))
    rows: list[Mapping[str, Any]] = []
    for item in rows_or_df:
        rows.extend(item.rows() if isinstance(item, CaseReport) else [item])
    return rows


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if number != number else number  # NaN from pandas -> None


def _row_score(row: Mapping[str, Any]) -> float:
    score = _number(row.get("case_suspicion"))
    return score if score is not None else _number(row.get("suspicion")) or 0.0


def suspicion_order(rows: Iterable[Any]) -> list[str]:
    """Patients, most suspicious first (ties keep their order in ``rows``).

    ``rows`` are metrics rows (dicts, from :func:`read_metrics` or ``CaseReport.rows()``),
    :class:`~cmrqc_widgets.qc.metrics.CaseReport` objects, or a pandas DataFrame. A patient's
    score is its ``case_suspicion`` (every failed check once), else its highest row score.
    """
    scores: dict[str, float] = {}
    for row in _as_rows(rows):
        score = _row_score(row)
        patient = str(row["patient"])
        scores[patient] = max(scores.get(patient, score), score)
    order = {p: i for i, p in enumerate(scores)}
    return sorted(scores, key=lambda p: (-scores[p], order[p]))


def flagged_patients(rows: Iterable[Any]) -> list[str]:
    """Patients with at least one failed check, most suspicious first."""
    scores: dict[str, float] = {}
    for row in _as_rows(rows):
        scores[str(row["patient"])] = max(scores.get(str(row["patient"]), 0.0), _row_score(row))
    return [p for p in suspicion_order(rows) if scores.get(p, 0.0) > 0]


def metrics_by_patient(rows: Iterable[Any]) -> dict[str, dict[str, Mapping[str, Any]]]:
    """Rows keyed by patient, then phase: what a metrics strip shows for the current case."""
    table: dict[str, dict[str, Mapping[str, Any]]] = {}
    for row in _as_rows(rows):
        table.setdefault(str(row["patient"]), {})[str(row["phase"])] = row
    return table


def suspicion_queue(rows: Iterable[Any]) -> Callable[[Any], list[int]]:
    """A review-queue order, most suspicious first, for ``ReviewState.register_order``.

    The returned function takes anything with a ``patients`` list (the dataset keys) and
    returns their indices; a patient is matched by its key, else by its absolute folder.
    Patients without metrics keep their file order after the measured ones.
    """
    ranked = suspicion_order(rows)

    def order(state: Any) -> list[int]:
        index: dict[str, int] = {}
        for i, key in enumerate(state.patients):
            index.setdefault(key, i)
            index.setdefault(os.path.abspath(os.path.expanduser(key)), i)
        found = [index.get(p, index.get(os.path.abspath(p))) for p in ranked]
        first = [i for i in dict.fromkeys(found) if i is not None]
        seen = set(first)
        return first + [i for i in range(len(state.patients)) if i not in seen]

    return order


def plot_cohort(rows_or_df: Any, ax: Any = None, ventricle: str = "LV", thresholds: Thresholds | None = None):
    """Scatter EF against EDV, one point per patient, flagged patients marked and named.

    Parameters
    ----------
    rows_or_df : rows, CaseReports or DataFrame
        As for :func:`suspicion_order`.
    ax : matplotlib Axes, optional
        Where to draw; a new figure otherwise.
    ventricle : {"LV", "RV"}
    thresholds : Thresholds, optional
        Its plausible EF range is drawn as dotted lines.

    Returns
    -------
    matplotlib.axes.Axes
    """
    v = ventricle.lower()
    if v not in ("lv", "rv"):
        raise ValueError(f"ventricle must be 'LV' or 'RV', not {ventricle!r}.")
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(6, 4.5))
    points: dict[str, tuple[float, float]] = {}
    score: dict[str, float] = {}
    for row in _as_rows(rows_or_df):
        patient = str(row["patient"])
        score[patient] = max(score.get(patient, 0.0), _row_score(row))
        edv, ef = _number(row.get(f"{v}_edv_ml")), _number(row.get(f"{v}_ef"))
        if edv is not None and ef is not None:
            points.setdefault(patient, (edv, ef))
    normal = np.array([xy for p, xy in points.items() if score[p] <= 0]).reshape(-1, 2)
    flagged = {p: xy for p, xy in points.items() if score[p] > 0}
    if len(normal):
        ax.scatter(
            normal[:, 0], normal[:, 1], s=28, c="0.45", marker="o", label=f"no failed check ({len(normal)})"
        )
    if flagged:
        xy = np.array(list(flagged.values()))
        ax.scatter(xy[:, 0], xy[:, 1], s=60, c="tab:red", marker="x", label=f"flagged ({len(flagged)})")
        for p, (x, y) in flagged.items():
            ax.annotate(Path(p).name, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    lo, hi = (thresholds or Thresholds()).ef_range
    for limit in (lo, hi):
        ax.axhline(limit, color="0.6", linestyle=":", linewidth=1)
    missing = len(score) - len(points)
    ax.set_xlabel(f"{ventricle.upper()} end-diastolic volume (ml)")
    ax.set_ylabel(f"{ventricle.upper()} ejection fraction (%)")
    title = f"{ventricle.upper()} EF vs EDV, {len(points)} patients"
    ax.set_title(title + (f" ({missing} without EF not shown)" if missing else ""))
    if points:
        ax.legend(loc="best", fontsize=8)
    return ax
