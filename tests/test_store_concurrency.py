"""The decision store under several writers at once and under a writer killed mid-save."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from cmrqc_widgets.store import Decision, QCStore, read_dataset_file

N_PROCESSES = 16


def _save_one(root: str, index: int, barrier: object) -> None:
    """Child process: wait for all, then save this process's patient in both phases."""
    ds = QCStore(root, "alice").open("c.json")
    barrier.wait(timeout=60)  # type: ignore[attr-defined]
    ds.save(f"p{index}", "ED", "accept", f"from process {index}")
    ds.save(f"p{index}", "ES", "reject", f"es {index}: leak")
    ds.close()


def test_sixteen_processes_saving_at_once_all_kept(tmp_path: Path) -> None:
    """16 processes saving different patients at the same moment: all 32 decisions are in the file."""
    store = QCStore(tmp_path, "alice")
    store.create("c.json", [f"p{i}" for i in range(N_PROCESSES + 4)])
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(N_PROCESSES)
    procs = [ctx.Process(target=_save_one, args=(str(tmp_path), i, barrier)) for i in range(N_PROCESSES)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
    assert [proc.exitcode for proc in procs] == [0] * N_PROCESSES

    on_disk = read_dataset_file(store.folder / "c.json")
    ds = store.open("c.json")
    for i in range(N_PROCESSES):
        assert on_disk[f"p{i}"]["ED_Comments"] == f"accept:from process {i}"
        assert on_disk[f"p{i}"]["ES_Comments"] == f"reject:es {i}: leak"
        assert ds.get(f"p{i}", "ES") == Decision("reject", f"es {i}: leak")
    assert on_disk[f"p{N_PROCESSES}"] == {"ED_Comments": "", "ES_Comments": ""}
    assert len(ds.history()) == 2 * N_PROCESSES


# Saves patient k (k = start, start+1, ...) and prints k once save() has returned.
_SAVER = """
import sys
from cmrqc_widgets.store import QCStore
root, start = sys.argv[1], int(sys.argv[2])
ds = QCStore(root, "alice").open("c.json")
k = start
while True:
    ds.save(f"p{k}", "ED" if k % 2 else "ES", "accept" if k % 3 else "reject", f"save {k}: ok")
    print(k, flush=True)
    k += 1
"""


def _acknowledged(proc: subprocess.Popen[str], wanted: int) -> list[int]:
    acked = []
    assert proc.stdout is not None
    while len(acked) < wanted:
        line = proc.stdout.readline()
        assert line, f"saver exited early: {proc.stderr.read() if proc.stderr else ''}"
        acked.append(int(line))
    return acked


def test_writer_killed_mid_save_loses_no_acknowledged_save(tmp_path: Path) -> None:
    """SIGKILL at random moments of a save loop: the file parses and holds every acknowledged save."""
    store = QCStore(tmp_path, "alice")
    # Big enough that a rewrite takes a while, so kills land inside saves.
    patients = [f"p{k}" for k in range(3000)]
    store.create("c.json", patients)
    rng = random.Random(0)
    acked: list[int] = []
    start = 0
    for _ in range(4):
        proc = subprocess.Popen(
            [sys.executable, "-c", _SAVER, str(tmp_path), str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        acked += _acknowledged(proc, 15)
        time.sleep(rng.uniform(0, 0.03))
        os.kill(proc.pid, signal.SIGKILL)
        rest, _ = proc.communicate(timeout=30)
        acked += [int(line) for line in rest.split()]
        assert proc.returncode == -signal.SIGKILL
        json.loads((store.folder / "c.json").read_text())  # never truncated
        start = acked[-1] + 2  # skip the save that may have been in flight

    ds = store.open("c.json")
    for k in acked:
        expected = Decision("accept" if k % 3 else "reject", f"save {k}: ok")
        assert ds.get(f"p{k}", "ED" if k % 2 else "ES") == expected
    ds.flush()
    on_disk = read_dataset_file(store.folder / "c.json")
    assert list(on_disk) == patients
    for k in acked:
        field = "ED_Comments" if k % 2 else "ES_Comments"
        assert on_disk[f"p{k}"][field] == f"{'accept' if k % 3 else 'reject'}:save {k}: ok"
    leftovers = [name for name in os.listdir(store.folder) if name.endswith((".json", ".tmp"))]
    assert leftovers == ["c.json"]
