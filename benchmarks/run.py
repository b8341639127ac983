"""Measure the reviewer's waits, ours against the old app's way, on this machine.

Run ``python benchmarks/run.py`` (add ``--quick`` for a short smoke run, ``--no-browser`` to skip
Chromium, ``--memory`` for the memory figures of ``memory.py`` alone). It prints a table and
writes ``benchmarks/results/latest.json``. Nothing here asserts a timing: the figures are for the
README and the closing notes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from baseline import old_app_move  # noqa: E402

from cmrqc_widgets.cases import CaseCache  # noqa: E402
from cmrqc_widgets.demo import make_demo_cohort  # noqa: E402
from cmrqc_widgets.render import auto_window, render_slice_pngs  # noqa: E402
from cmrqc_widgets.render.points import case_points  # noqa: E402
from cmrqc_widgets.store import QCStore  # noqa: E402

SIZES = {
    "short-axis 200x200x12": {"shape": (200, 200, 12), "spacing": (1.8, 1.8, 8.0)},
    "super-resolved 256x256x80": {"shape": (256, 256, 80), "spacing": (1.25, 1.25, 2.0)},
}


def timed(function: Callable[[], object], repeat: int) -> list[float]:
    """Wall-clock milliseconds of ``repeat`` calls of ``function``."""
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        out.append((time.perf_counter() - start) * 1000)
    return out


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"p50": statistics.median(ordered), "p95": p95, "n": len(ordered)}


def cohort(root: Path, size: str, n_patients: int) -> list[Path]:
    dataset = make_demo_cohort(root, "bench", n_patients=n_patients, **SIZES[size])
    return [Path(p) for p in json.loads(dataset.read_text())]


def normal_patients(patients: list[Path]) -> list[Path]:
    from cmrqc_widgets.demo import DEMO_BROKEN

    return [p for p in patients if p.name not in DEMO_BROKEN]


def bench_kernel(root: Path, size: str, repeat: int) -> dict[str, object]:
    """Patient switch (cold and warm), slice change and 3D points, on the pure modules and the widget."""
    patients = normal_patients(cohort(root / size.split()[0], size, 10))
    result: dict[str, object] = {}

    baseline = timed(lambda: old_app_move(patients[0], "ED"), repeat)
    result["baseline_move_ms"] = summary(baseline)
    result["baseline_page_bytes"] = old_app_move(patients[0], "ED")["page_bytes"]

    def cold_switch() -> None:
        cache = CaseCache(max_mb=512)
        case, _ = cache.get_phases(patients[1])  # ED and ES read in parallel
        window = auto_window(case.image)
        render_slice_pngs(case, case.shape[0] // 2, window=window)
        case_points(case)
        cache.close()

    result["switch_cold_ms"] = summary(timed(cold_switch, repeat))

    cache = CaseCache(max_mb=512)
    cache.prefetch(patients[2])
    cache.get(patients[2], "ED")
    cache.get(patients[2], "ES")

    def warm_switch() -> None:
        case = cache.get(patients[2], "ED")
        cache.get(patients[2], "ES")
        window = auto_window(case.image)
        render_slice_pngs(case, case.shape[0] // 2, window=window)
        case_points(case)

    result["switch_warm_ms"] = summary(timed(warm_switch, repeat))

    case = cache.get(patients[2], "ED")
    window = auto_window(case.image)
    slices = iter(range(10**9))
    result["slice_render_ms"] = summary(
        timed(lambda: render_slice_pngs(case, next(slices) % case.shape[0], window=window), repeat * 5)
    )
    result["points_ms"] = summary(timed(lambda: case_points(case), repeat))
    cache.close()

    result.update(bench_widget(patients, repeat))
    return result


def bench_widget(patients: list[Path], repeat: int) -> dict[str, object]:
    """The same moves through the real ReviewWidget (no browser: messages go nowhere)."""
    try:
        from cmrqc_widgets.widgets import ReviewWidget
    except ImportError as error:  # the widget is optional for the pure figures
        return {"widget_error": str(error)}
    root = patients[0].parent.parent
    store = QCStore(root, "bench")
    name = "bench_widget.json"
    if name not in store.datasets():
        store.create(name, [str(p) for p in patients])
    widget = ReviewWidget(root=root, user="bench", dataset=name)
    state = widget.state
    viewer = widget.slice_view

    def wait_prefetch() -> None:
        widget.wait_idle()  # the neighbours' prefetch and background measuring are done

    cold, warm, slice_ms, sent = [], [], [], []
    for _ in range(repeat):
        state.cache.clear()
        start = time.perf_counter()
        widget.next_patient_button.click()
        cold.append((time.perf_counter() - start) * 1000)
        wait_prefetch()
        start = time.perf_counter()
        widget.next_patient_button.click()
        warm.append((time.perf_counter() - start) * 1000)
        sent.append(len(viewer.image) + len(viewer.labels))
        wait_prefetch()
        for _ in range(5):
            start = time.perf_counter()
            state.step_slice(1)
            slice_ms.append((time.perf_counter() - start) * 1000)
    return {
        "widget_switch_cold_ms": summary(cold),
        "widget_switch_warm_ms": summary(warm),
        "widget_slice_change_ms": summary(slice_ms),
        "widget_volume_bytes_per_move": int(np.median(sent)),
    }


def bench_store(root: Path, sizes: list[int], saves: int) -> dict[str, object]:
    """Save latency p50/p95 by dataset size; open and statistics at the largest size."""
    out: dict[str, object] = {}
    rng = random.Random(0)
    for n in sizes:
        store = QCStore(root / f"store{n}", "bench")
        patients = [f"/data/cohort/{i:07d}" for i in range(n)]
        dataset = store.create("big.json", patients)
        def save_one(dataset=dataset, patients=patients) -> None:
            decision = rng.choice(["accept", "reject", "finetune", "unclassified"])
            dataset.save(rng.choice(patients), rng.choice(["ED", "ES"]), decision, "ok")

        samples = timed(save_one, saves)
        dataset.close()
        out[f"save_ms_{n}"] = summary(samples)
        if n == max(sizes):
            out[f"open_ms_{n}"] = summary(timed(lambda s=store: s.open("big.json").close(), 5))
            opened = store.open("big.json")
            out[f"statistics_ms_{n}"] = summary(timed(opened.statistics, 5))
            opened.close()
    return out


def bench_memory(root: Path, n_patients: int) -> dict[str, object]:
    """Peak RSS of a fresh kernel-like process reviewing ``n_patients`` in a row through the widget."""
    make_demo_cohort(root, "mem", n_patients=n_patients)  # generated here, not in the measured process
    code = f"""
import resource, sys, time
from cmrqc_widgets.widgets import ReviewWidget
w = ReviewWidget(root={str(root)!r}, user="mem", dataset="demo.json")
for _ in range({n_patients}):
    w.next_patient_button.click()
    w.accept_button.click()
    time.sleep(0.05)
# VmHWM, not ru_maxrss: on Linux ru_maxrss survives fork+exec and would report the parent's peak.
print(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"memory_error": done.stderr.strip().splitlines()[-1:]}
    return {"peak_rss_mb_50_patients": int(done.stdout.split()[-1]) / 1024}


def print_table(results: dict[str, object]) -> None:
    def fmt(key: str, value: object) -> str:
        if isinstance(value, dict) and "p50" in value:
            unit = "s" if key.endswith("_s") else "ms"
            return f"p50 {value['p50']:8.2f} {unit:2s}  p95 {value['p95']:8.2f} {unit:2s}  (n={value['n']})"
        if isinstance(value, float):
            return f"{value:.2f}"
        return str(value)

    for section, values in results.items():
        print(f"\n## {section}")
        if isinstance(values, dict):
            for key, value in values.items():
                if isinstance(value, (list, dict)) and not (isinstance(value, dict) and "p50" in value):
                    continue  # raw samples and diagnostics stay in the JSON
                print(f"  {key:34s} {fmt(key, value)}")
        else:
            print(f"  {values}")


def ratios(results: dict[str, dict]) -> dict[str, float]:
    out = {}
    for size, values in results.items():
        if not isinstance(values, dict) or "baseline_move_ms" not in values:
            continue
        base = values["baseline_move_ms"]["p50"]
        out[f"{size}: baseline / ours, cold switch"] = round(base / values["switch_cold_ms"]["p50"], 1)
        out[f"{size}: baseline / ours, warm switch"] = round(base / values["switch_warm_ms"]["p50"], 1)
        if "widget_switch_cold_ms" in values:
            out[f"{size}: baseline / widget, cold switch"] = round(
                base / values["widget_switch_cold_ms"]["p50"], 1
            )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few repeats and small stores (smoke run)")
    parser.add_argument("--no-browser", action="store_true", help="skip the Chromium figures")
    parser.add_argument("--memory", action="store_true", help="only the memory figures (memory.py)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "latest.json")
    args = parser.parse_args(argv)
    if args.memory:
        import memory

        return memory.main([])
    repeat = 3 if args.quick else 15
    results: dict[str, object] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        }
    }
    with tempfile.TemporaryDirectory(prefix="cmrqc-bench-") as tmp:
        root = Path(tmp)
        for size in SIZES:
            results[size] = bench_kernel(root, size, repeat)
        store_sizes = [100, 1_000] if args.quick else [100, 10_000, 100_000]
        results["store"] = bench_store(root, store_sizes, 50 if args.quick else 200)
        results["memory"] = bench_memory(root / "memory", 10 if args.quick else 50)
        if not args.no_browser:
            from browser import bench_browser

            results["browser"] = bench_browser(root / "browser", quick=args.quick)
    results["ratios"] = ratios(results)
    results["self_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print_table(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
