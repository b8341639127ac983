"""How well does the automatic QC find what a reviewer would reject? Measured, per failure kind.

Run ``python benchmarks/qc_accuracy.py`` (``--quick`` for a smoke run). It takes cases believed
good — the five real Sunnybrook patients with their expert contours (``../shared/realdata``), the
normal patients of the synthetic demo cohort, and any ``--folder`` of cases — makes realistic
failures from each (:mod:`cmrqc_widgets.qc.faults`: shift, dilate, erode, mirror, swap, leak,
gap, island, drop, and ES = ED), scores every case with :func:`cmrqc_widgets.qc.case_metrics`
and prints, per dataset:

- ROC AUC of the case score, all broken cases against all good ones, and per failure kind;
- the share of good cases flagged (score >= FLAG_SCORE), and of each kind's broken cases;
- the share of broken cases in the top 10 % / 30 % of the suspicion queue. Real cohorts are
  mostly good, so the queue is a resampled cohort where 15 % of the cases are broken (clinicians
  reject 11-15 % of exams), averaged over 300 draws;
- batch speed: cases per second on one core, checks only (arrays in memory) and with reading the
  files, on 200x200x12 demo cases.

Good cases are each original plus a "jitter" copy per phase whose outer border moved by one
pixel (the size of two experts' disagreement): acceptable to a reviewer, so counted as good.
Sunnybrook has LV and myocardium only (no RV), and a myocardium contour at ED only, so its ES
phase is checked with an LV-only label map. Nothing is tuned here: the figures go to the README.
Writes ``benchmarks/results/qc_accuracy.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cmrqc_widgets.cases import load_case
from cmrqc_widgets.cases.contours import SUNNYBROOK_LAYOUT, sunnybrook_patient_to_nifti
from cmrqc_widgets.demo import DEMO_BROKEN, DEMO_FOLDER, make_demo_cohort
from cmrqc_widgets.qc import case_metrics, metrics_for_patient
from cmrqc_widgets.qc.faults import FAULTS, make_fault
from cmrqc_widgets.qc.score import is_flagged

HERE = Path(__file__).resolve().parent
SUNNYBROOK = HERE.parent.parent / "shared" / "realdata" / "sunnybrook"
KINDS = (*FAULTS, "ES = ED")
PREVALENCE = 0.15


@dataclass(frozen=True)
class Phase:
    """One phase as the checks see it (what :func:`case_metrics` reads from a loaded case)."""

    image: np.ndarray
    labels: np.ndarray
    spacing: tuple[float, float, float]
    affine: np.ndarray
    label_map: dict[str, int]


@dataclass(frozen=True)
class Scored:
    name: str
    kind: str  # "good", "jitter" or a failure kind
    score: float

    @property
    def broken(self) -> bool:
        return self.kind not in ("good", "jitter")


def _phase(case, label_map=None) -> Phase:
    return Phase(
        case.image, np.asarray(case.labels), case.spacing, case.affine, dict(label_map or case.label_map)
    )


def copied_epicardium(folder: Path) -> dict[str, str]:
    """Patients whose epicardial contour files are byte-identical to an earlier patient's: name -> source.

    In the shared Sunnybrook copy, SCD0000501's o-contours are SCD0000101's: that myocardium is
    not believed good, so it is left out (the QC flags it; see tests/test_qc_realdata.py).
    """
    seen: dict[tuple, str] = {}
    copies = {}
    for patient in sorted(p for p in folder.iterdir() if (p / "contours" / "o-contours").is_dir()):
        files = sorted((patient / "contours" / "o-contours").iterdir())
        key = tuple((f.name, f.read_bytes()) for f in files)
        if key in seen:
            copies[patient.name] = seen[key]
        seen.setdefault(key, patient.name)
    return copies


def sunnybrook_cases(folder: Path, work: Path) -> list[tuple[str, dict[str, Phase]]]:
    """The Sunnybrook patients converted from DICOM + contours (ES: LV only, no myocardium contour)."""
    cases = []
    copies = copied_epicardium(folder)
    for name, source in copies.items():
        print(f"{name}: epicardial contours are copies of {source}'s; its myocardium is left out.")
    for patient in sorted(p for p in folder.iterdir() if (p / "dicom").is_dir()):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom's notes on the files' non-standard UIDs
            sunnybrook_patient_to_nifti(patient, work / patient.name)
        ed = load_case(work / patient.name, "ED", SUNNYBROOK_LAYOUT)
        es = load_case(work / patient.name, "ES", SUNNYBROOK_LAYOUT)
        lv_only = {"LV": ed.label_map["LV"]}
        ed_phase = _phase(ed)
        if patient.name in copies:
            ed_phase = Phase(
                ed.image, np.where(ed.labels == lv_only["LV"], ed.labels, 0), ed.spacing, ed.affine, lv_only
            )
        cases.append((patient.name, {"ED": ed_phase, "ES": _phase(es, lv_only)}))
    return cases


def folder_cases(folder: Path, layout=None, skip=()) -> list[tuple[str, dict[str, Phase]]]:
    """Every patient folder under ``folder`` (hidden and ``skip`` names left out)."""
    cases = []
    for patient in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if patient.name in skip:
            continue
        cases.append((patient.name, {ph: _phase(load_case(patient, ph, layout)) for ph in ("ED", "ES")}))
    return cases


def _score(phases: dict[str, Phase]) -> float:
    return case_metrics(phases["ED"], phases["ES"], patient="").suspicion


def _with(phase: Phase, labels: np.ndarray) -> Phase:
    return Phase(phase.image, labels, phase.spacing, phase.affine, phase.label_map)


def score_dataset(cases, rng: np.random.Generator, variants: int) -> list[Scored]:
    """Good cases, their jittered copies and every applicable failure, scored."""
    scored = []
    for name, phases in cases:
        scored.append(Scored(name, "good", _score(phases)))
        for phase in ("ED", "ES"):
            p = phases[phase]
            labels = make_fault("jitter", p.labels, p.label_map, p.spacing, rng)
            scored.append(Scored(f"{name} {phase}", "jitter", _score({**phases, phase: _with(p, labels)})))
        for kind in FAULTS:
            for phase in ("ED", "ES"):
                p = phases[phase]
                for _ in range(variants):
                    labels = make_fault(kind, p.labels, p.label_map, p.spacing, rng)
                    if labels is None:
                        continue
                    scored.append(
                        Scored(f"{name} {phase}", kind, _score({**phases, phase: _with(p, labels)}))
                    )
        es_copy = _with(phases["ES"], phases["ED"].labels.copy())
        es_copy = Phase(
            es_copy.image, es_copy.labels, es_copy.spacing, es_copy.affine, phases["ED"].label_map
        )
        scored.append(Scored(name, "ES = ED", _score({**phases, "ES": es_copy})))
    return scored


def roc_auc(positive: list[float], negative: list[float]) -> float | None:
    """Probability that a broken case scores above a good one (ties count half): the ROC AUC."""
    if not positive or not negative:
        return None
    pos, neg = np.asarray(positive)[:, None], np.asarray(negative)[None, :]
    return float(((pos > neg).sum() + 0.5 * (pos == neg).sum()) / (pos.size * neg.size))


def queue_share(scored: list[Scored], rng: np.random.Generator, top: float, draws: int = 300) -> float:
    """Mean share of the broken cases found in the top ``top`` of a queue with 15 % broken cases."""
    good = [s.score for s in scored if not s.broken]
    broken = [s.score for s in scored if s.broken]
    n_broken = max(1, round(len(good) * PREVALENCE / (1 - PREVALENCE)))
    shares = []
    for _ in range(draws):
        picked = rng.choice(broken, size=n_broken, replace=False)
        scores = np.r_[picked, good] + rng.uniform(0, 1e-9, n_broken + len(good))  # random tie order
        is_broken = np.r_[np.ones(n_broken, bool), np.zeros(len(good), bool)]
        order = np.argsort(-scores)
        k = math.ceil(top * scores.size)
        shares.append(is_broken[order[:k]].sum() / n_broken)
    return float(np.mean(shares))


def summarise(scored: list[Scored], rng: np.random.Generator) -> dict:
    good = [s.score for s in scored if not s.broken]
    broken = [s.score for s in scored if s.broken]
    per_kind = {}
    for kind in KINDS:
        scores = [s.score for s in scored if s.kind == kind]
        if scores:
            per_kind[kind] = {
                "n": len(scores),
                "auc": roc_auc(scores, good),
                "flagged": float(np.mean([is_flagged(x) for x in scores])),
            }
    originals = [s.score for s in scored if s.kind == "good"]
    n_queue_broken = max(1, round(len(good) * PREVALENCE / (1 - PREVALENCE)))  # as in queue_share
    return {
        "n_good": len(good),
        "n_broken": len(broken),
        "auc": roc_auc(broken, good),
        "good_flagged": float(np.mean([is_flagged(x) for x in good])),
        "originals_flagged": float(np.mean([is_flagged(x) for x in originals])),
        "broken_flagged": float(np.mean([is_flagged(x) for x in broken])),
        "top10": queue_share(scored, rng, 0.10),
        "top10_best": min(1.0, math.ceil(0.10 * (len(good) + n_queue_broken)) / n_queue_broken),
        "top30": queue_share(scored, rng, 0.30),
        "per_kind": per_kind,
        "good_scores": sorted(good, reverse=True)[:5],
    }


def speed(folder: Path, cases, seconds: float) -> dict:
    """Cases per second per core: checks on arrays in memory, and read + check from files.

    Timed in this process's CPU seconds (``time.process_time``), so other work on a shared machine
    does not slow the figure down; the single-threaded checks use one core.
    """
    results = {}
    start, n = time.process_time(), 0
    while time.process_time() - start < seconds:
        _, phases = cases[n % len(cases)]
        _score(phases)
        n += 1
    results["checks_cases_per_s"] = n / (time.process_time() - start)
    patients = [p for p in sorted(folder.iterdir()) if p.is_dir() and p.name not in DEMO_BROKEN]
    start, n = time.process_time(), 0
    while time.process_time() - start < seconds:
        metrics_for_patient(patients[n % len(patients)], "4dsegment")
        n += 1
    results["read_and_check_cases_per_s"] = n / (time.process_time() - start)
    return results


def _fmt(value, percent=False) -> str:
    if value is None:
        return "—"
    return f"{100 * value:.0f} %" if percent else f"{value:.3f}"


def print_table(results: dict) -> None:
    names = list(results["datasets"])
    print("\nAutomatic QC against failures made from good cases (score = case suspicion)\n")
    print(f"{'':34s}" + "".join(f"{n:>22s}" for n in names))
    rows = [
        ("good cases / broken cases", lambda d: f"{d['n_good']} / {d['n_broken']}"),
        ("ROC AUC, all kinds", lambda d: _fmt(d["auc"])),
        ("good cases flagged", lambda d: _fmt(d["good_flagged"], True)),
        ("  of them originals flagged", lambda d: _fmt(d["originals_flagged"], True)),
        ("broken cases flagged", lambda d: _fmt(d["broken_flagged"], True)),
        ("broken found in top 10 % of queue", lambda d: _fmt(d["top10"], True)),
        ("  (the most a perfect ranking finds)", lambda d: _fmt(d["top10_best"], True)),
        ("broken found in top 30 % of queue", lambda d: _fmt(d["top30"], True)),
    ]
    for label, get in rows:
        print(f"{label:34s}" + "".join(f"{get(results['datasets'][n]):>22s}" for n in names))
    print(f"\n{'ROC AUC (flagged) per kind':34s}" + "".join(f"{n:>22s}" for n in names))
    for kind in KINDS:
        cells = []
        for n in names:
            k = results["datasets"][n]["per_kind"].get(kind)
            cells.append("—" if k is None else f"{_fmt(k['auc'])} ({_fmt(k['flagged'], True)})")
        print(f"  {kind:32s}" + "".join(f"{c:>22s}" for c in cells))
    if "speed" in results:
        s = results["speed"]
        print(
            f"\nBatch speed per core (CPU time), 200x200x12: {s['checks_cases_per_s']:.1f} cases/s "
            f"(checks on arrays), {s['read_and_check_cases_per_s']:.1f} cases/s (reading the files too)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sunnybrook", type=Path, default=SUNNYBROOK, help="Sunnybrook folder (real data)")
    parser.add_argument("--demo", type=int, default=24, help="demo patients to generate (0: none)")
    parser.add_argument("--folder", type=Path, help="another folder of patient folders believed good")
    parser.add_argument("--layout", default=None, help="layout of --folder (default: detected)")
    parser.add_argument("--variants", type=int, default=2, help="random copies of each failure per phase")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="smoke run: few cases, one variant")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "qc_accuracy.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.demo, args.variants = min(args.demo, 8), 1
    rng = np.random.default_rng(args.seed)
    results: dict = {"datasets": {}, "prevalence_in_queue": PREVALENCE, "variants": args.variants}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        datasets = {}
        if args.sunnybrook and args.sunnybrook.is_dir():
            datasets["Sunnybrook (real)"] = sunnybrook_cases(args.sunnybrook, work / "sunnybrook")
        elif args.sunnybrook:
            print(f"Sunnybrook data not found at {args.sunnybrook}; skipped.", file=sys.stderr)
        demo_folder = None
        if args.demo:
            make_demo_cohort(work / "demo", "bench", n_patients=args.demo, seed=args.seed)
            demo_folder = work / "demo" / DEMO_FOLDER
            datasets["demo (synthetic)"] = folder_cases(demo_folder, "4dsegment", skip=DEMO_BROKEN)
        if args.folder:
            datasets[args.folder.name] = folder_cases(args.folder, args.layout)
        for name, cases in datasets.items():
            if args.quick:
                cases = cases[:3]
            t0 = time.perf_counter()
            scored = score_dataset(cases, rng, args.variants)
            results["datasets"][name] = summarise(scored, rng)
            results["datasets"][name]["seconds"] = time.perf_counter() - t0
        if demo_folder is not None:
            results["speed"] = speed(demo_folder, datasets["demo (synthetic)"], 2.0 if args.quick else 8.0)
    print_table(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"\nwritten {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
