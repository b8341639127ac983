"""How long a patient switch keeps the 2D panels waiting, with the 3D panel closed and open.

Run ``python benchmarks/switch_3d.py [--patients 10]``. Kernel side, no browser: the time of one
"next patient" (the 2D batch ready to go out), then, separately, the deferred 3D update that the
kernel's event loop runs afterwards. Before issue 12 the 3D update ran inside the switch. Prints
medians; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=10)
    args = parser.parse_args()
    from cmrqc_widgets.demo import make_demo_cohort
    from cmrqc_widgets.widgets import ReviewWidget

    root = Path(tempfile.mkdtemp())
    make_demo_cohort(root, "bench", n_patients=args.patients)
    for show_3d in (False, True):
        widget = ReviewWidget(root=root, user="bench", show_3d=show_3d, freeze_gc=False)
        queued: list = []
        widget._schedule = lambda function, delay, queued=queued: queued.append(function)
        switch, three_d = [], []
        for _ in range(args.patients):
            widget.wait_idle()
            started = time.perf_counter()
            widget.next_patient_button.click()
            switch.append(time.perf_counter() - started)
            started = time.perf_counter()
            while queued:
                queued.pop(0)()
            three_d.append(time.perf_counter() - started)
        widget.close()
        label = "3D open  " if show_3d else "3D closed"
        print(
            f"{label}: 2D switch median {1000 * statistics.median(switch):.1f} ms"
            f" (max {1000 * max(switch):.1f}); deferred 3D median {1000 * statistics.median(three_d):.1f} ms"
        )


if __name__ == "__main__":
    sys.exit(main())
