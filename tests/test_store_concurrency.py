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
root, start, delay = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
ds = QCStore(root, "alice", flush_delay=delay).open("c.json")
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
    """SIGKILL at random moments of saves and rewrites: the file parses, every acknowledged save is kept."""
    store = QCStore(tmp_path, "alice")
    # Big enough that a rewrite takes a while, so kills land inside saves.
    patients = [f"p{k}" for k in range(3000)]
    store.create("c.json", patients)
    rng = random.Random(0)
    acked: list[int] = []
    start = 0
    for _ in range(4):
        proc = subprocess.Popen(
            # A tiny flush delay makes the killed process rewrite the file all the time.
            [sys.executable, "-c", _SAVER, str(tmp_path), str(start), "0.002"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        acked += _acknowledged(proc, 15)
        time.sleep(rng.uniform(0, 0.1))
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


# Answers commands from stdin, one JSON list per line: ["save", patient, phase, decision, comment]
# or ["get", patient, phase]; prints the stored string after each. Never rewrites the file itself.
_PEER = """
import json, sys
from cmrqc_widgets.store import QCStore
ds = QCStore(sys.argv[1], "bob", flush_delay=None).open("c.json")
for line in sys.stdin:
    command = json.loads(line)
    if command[0] == "save":
        print(ds.save(*command[1:]).encode(), flush=True)
    elif command[0] == "get":
        print(ds.get(*command[1:]).encode(), flush=True)
    elif command[0] == "exit":
        sys.exit(0)
    else:
        ds.close()
        print("closed", flush=True)
"""


def _peer(root: Path) -> subprocess.Popen[str]:
    """A process running _PEER on ``root``; use it in a ``with`` block so its pipes get closed."""
    return subprocess.Popen(
        [sys.executable, "-c", _PEER, str(root)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )


def _ask(peer: subprocess.Popen[str], *command: str | None) -> str:
    assert peer.stdin is not None and peer.stdout is not None
    peer.stdin.write(json.dumps(command) + "\n")
    peer.stdin.flush()
    return peer.stdout.readline().rstrip("\n")


def test_processes_interleaving_saves_see_each_other_at_once(tmp_path: Path) -> None:
    """Two processes alternate saves; each reads the other's save right away, before any file rewrite."""
    store = QCStore(tmp_path / "root", "bob", flush_delay=None)
    ds = store.create("c.json", ["p1", "p2", "p3"])
    untouched = ds.path.read_bytes()
    with _peer(tmp_path / "root") as peer:
        ds.save("p1", "ED", "accept", "mine")
        assert _ask(peer, "get", "p1", "ED") == "accept:mine"
        assert _ask(peer, "save", "p2", "ES", "reject", "theirs: leak") == "reject:theirs: leak"
        assert ds.get("p2", "ES") == Decision("reject", "theirs: leak")
        ds.save("p2", "ES", "finetune")
        assert _ask(peer, "get", "p2", "ES") == "finetune:theirs: leak"
        assert _ask(peer, "save", "p3", "ED", "unclassified", None) == "unclassified:"
        assert ds.get("p3", "ED") == Decision("unclassified")
        assert ds.path.read_bytes() == untouched  # all of it went through the journal
        assert _ask(peer, "close") == "closed"
    on_disk = read_dataset_file(ds.path)
    assert on_disk["p1"]["ED_Comments"] == "accept:mine"
    assert on_disk["p2"]["ES_Comments"] == "finetune:theirs: leak"
    assert on_disk["p3"]["ED_Comments"] == "unclassified:"
    assert [h.user for h in ds.history()] == ["bob"] * 4


def test_kill_after_save_before_rewrite_loses_nothing(tmp_path: Path) -> None:
    """SIGKILL right after save() returns: reopening shows the decision and flush writes it to the file."""
    store = QCStore(tmp_path / "root", "bob", flush_delay=None)
    path = store.create("c.json", ["p1", "p2"]).path
    before = path.read_text()
    with _peer(tmp_path / "root") as peer:
        assert _ask(peer, "save", "p2", "ED", "reject", "kill: -9") == "reject:kill: -9"
        os.kill(peer.pid, signal.SIGKILL)
        peer.wait(timeout=30)
    assert path.read_text() == before  # the rewrite never happened

    ds = store.open("c.json")
    assert ds.get("p2", "ED") == Decision("reject", "kill: -9")
    assert ds.history("p2")[-1].new == Decision("reject", "kill: -9")
    ds.flush()
    expected = {
        "p1": {"ED_Comments": "", "ES_Comments": ""},
        "p2": {"ED_Comments": "reject:kill: -9", "ES_Comments": ""},
    }
    assert path.read_text() == json.dumps(expected, indent=4)
    assert store.open("c.json").get("p2", "ED") == Decision("reject", "kill: -9")


def test_normal_exit_writes_pending_saves(tmp_path: Path) -> None:
    """A process that exits without close() still brings the dataset file up to date (atexit)."""
    store = QCStore(tmp_path / "root", "bob", flush_delay=None)
    path = store.create("c.json", ["p1"]).path
    with _peer(tmp_path / "root") as peer:
        assert _ask(peer, "save", "p1", "ES", "accept", "bye") == "accept:bye"
        _ask(peer, "exit")
        assert peer.wait(timeout=30) == 0
    assert read_dataset_file(path)["p1"]["ES_Comments"] == "accept:bye"
