"""What a reviewing kernel holds: peak memory over 50 patients, and a real dashboard kernel's cost.

``python benchmarks/memory.py`` (or ``python benchmarks/run.py --memory``) prints a table and writes
``benchmarks/results/memory.json``:

* **review**: a fresh Python process builds a ``ReviewWidget`` and reviews N patients in a row
  (next + accept each), at 200x200x12 and super-resolved 256x256x80; peak RSS (``VmHWM``) and RSS
  at the end;
* **kernel**: a real ipykernel started through ``jupyter_client`` (as Voilà starts one) runs the
  dashboard notebook's imports, builds the review screen and reviews 50 demo patients; RSS after
  each step, and which heavy libraries the kernel has imported and when.

Memory and byte figures do not depend on the machine's load; nothing here asserts a figure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

HEAVY = (
    "scipy",
    "scipy.ndimage",
    "matplotlib",
    "matplotlib.pyplot",
    "pandas",
    "dask",
    "distributed",
    "pydicom",
    "PIL.Image",
    "ipyvolume",
    "pythreejs",
    "nibabel",
    "isal",
)
"""Libraries whose presence in a kernel is worth reporting (each costs megabytes)."""

SHAPES = {"200x200x12": ((200, 200, 12), (1.8, 1.8, 8.0)), "256x256x80": ((256, 256, 80), (1.25, 1.25, 2.0))}

_REVIEW = """
import sys, time
from cmrqc_widgets.widgets import ReviewWidget
w = ReviewWidget(root={root!r}, user="mem", dataset="demo.json")
for _ in range({n}):
    w.next_patient_button.click()
    w.accept_button.click()
    time.sleep(0.05)
w.wait_idle()
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print(int(status["VmHWM"].split()[0]), int(status["VmRSS"].split()[0]))
"""


def _cohort(root: Path, shape: str, n_patients: int) -> Path:
    """A demo cohort of ``n_patients`` at ``shape`` under ``root`` (made once, reused)."""
    folder = root / f"mem-{shape}-{n_patients}"
    if not (folder / "users" / "mem" / "demo.json").exists():
        from cmrqc_widgets.demo import make_demo_cohort

        voxels, spacing = SHAPES[shape]
        make_demo_cohort(folder, "mem", n_patients=n_patients, shape=voxels, spacing=spacing)
    return folder


def review_peak(root: Path, shape: str, n_patients: int) -> dict[str, float]:
    """Peak and final RSS (MB) of a fresh process reviewing ``n_patients`` in a row."""
    folder = _cohort(root, shape, n_patients)
    code = _REVIEW.format(root=str(folder), n=n_patients)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1:]}
    peak, final = (int(v) / 1024 for v in done.stdout.split()[-2:])
    return {"peak_rss_mb": round(peak, 1), "final_rss_mb": round(final, 1), "patients": n_patients}


def kernel_footprint(root: Path, n_patients: int = 50) -> dict[str, object]:
    """RSS (MB) of a real ipykernel: started, dashboard imports, screen built, ``n_patients`` reviewed."""
    import psutil
    from jupyter_client.manager import start_new_kernel

    folder = _cohort(root, "200x200x12", n_patients)
    env = {**os.environ, "CMRQC_ROOT": str(folder), "CMRQC_USER": "mem"}
    manager, client = start_new_kernel(kernel_name="python3", env=env)
    process = psutil.Process(manager.provisioner.process.pid)
    heavy = json.dumps(HEAVY)
    out: list[dict] = []

    def run(code: str) -> str:
        reply = client.execute_interactive(code, timeout=300, output_hook=lambda msg: out.append(msg))
        if reply["content"]["status"] != "ok":
            raise RuntimeError(f"{code!r} failed: {reply['content'].get('evalue')}")
        return "".join(m["content"].get("text", "") for m in out if m["msg_type"] == "stream")

    steps: dict[str, object] = {}
    try:
        time.sleep(0.5)
        steps["started_mb"] = round(process.memory_info().rss / 1e6, 1)
        run("from cmrqc_widgets.widgets import ReviewWidget, quiet_shutdown, warm_up")
        steps["imported_mb"] = round(process.memory_info().rss / 1e6, 1)
        out.clear()
        steps["imported_heavy"] = json.loads(
            run(f"import sys, json; print(json.dumps([m for m in {heavy} if m in sys.modules]))")
        )
        run("w = ReviewWidget(dataset='demo.json'); w.wait_idle()")
        steps["screen_built_mb"] = round(process.memory_info().rss / 1e6, 1)
        out.clear()
        steps["screen_heavy"] = json.loads(
            run(f"import sys, json; print(json.dumps([m for m in {heavy} if m in sys.modules]))")
        )
        run(
            f"for _ in range({n_patients}):\n"
            "    w.next_patient_button.click(); w.accept_button.click()\n"
            "w.wait_idle()"
        )
        steps[f"after_{n_patients}_patients_mb"] = round(process.memory_info().rss / 1e6, 1)
        out.clear()
        status = run("print(open('/proc/self/status').read())")
        hwm = next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))
        steps["peak_mb"] = round(int(hwm) * 1024 / 1e6, 1)
        out.clear()
        steps["after_heavy"] = json.loads(
            run(f"import sys, json; print(json.dumps([m for m in {heavy} if m in sys.modules]))")
        )
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    return steps


def bench_memory_all(root: Path, n_patients: int = 50, kernel: bool = True) -> dict[str, object]:
    """Every figure of this module (see its docstring)."""
    out: dict[str, object] = {}
    for shape in SHAPES:
        out[f"review_{n_patients}_{shape}"] = review_peak(root, shape, n_patients)
    if kernel:
        out["dashboard_kernel"] = kernel_footprint(root, n_patients)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=50)
    parser.add_argument("--root", type=Path, help="where the demo cohorts go (kept; default: temporary)")
    parser.add_argument("--no-kernel", action="store_true", help="skip the real-kernel figures")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "memory.json")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cmrqc-mem-") as tmp:
        results = bench_memory_all(args.root or Path(tmp), args.patients, kernel=not args.no_kernel)
    for section, values in results.items():
        print(f"\n## {section}")
        for key, value in values.items():
            print(f"  {key:28s} {value}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
