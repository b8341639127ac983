"""The capacity benchmark's command line and its summary (the full run needs a hub and minutes)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def capacity():
    """benchmarks/capacity.py as a module."""
    spec = importlib.util.spec_from_file_location("capacity_bench", BENCHMARKS / "capacity.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["capacity_bench"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("capacity_bench", None)


def reviewer(user: str, switch_ms: list[float], acknowledged: int, on_disk: int) -> dict:
    return {
        "user": user,
        "ready": True,
        "switch_ms": switch_ms,
        "acknowledged": acknowledged,
        "on_disk": on_disk,
        "failures": 0,
        "errors": [],
    }


def test_reviewer_counts_are_parsed_sorted_and_checked(capacity) -> None:
    """--reviewers 20,1,5,10 runs 1, 5, 10, 20; a bad list is refused with a message."""
    args = capacity.parse_args(["--reviewers", "20,1,5,10", "--minutes", "0.5"])
    assert args.reviewers == [1, 5, 10, 20] and args.minutes == 0.5 and args.interval == 2.0
    with pytest.raises(SystemExit):
        capacity.parse_args(["--reviewers", "one,two"])
    with pytest.raises(SystemExit):
        capacity.parse_args(["--reviewers", "0"])


def test_summary_pools_every_reviewers_moves_and_compares_decisions(capacity) -> None:
    """p50/p95 over all moves, acknowledged against on-disk decisions, memory and CPU per reviewer."""
    rows = [reviewer("rev01", [10.0, 20.0, 30.0], 3, 3), reviewer("rev02", [40.0, 500.0], 2, 1)]
    processes = {
        "per_user": {"rev01": {"rss_mb": 300.0, "cpu_s": 1.0}, "rev02": {"rss_mb": 200.0, "cpu_s": 0.5}},
        "hub_mb": 90.0,
    }
    row = capacity.summarise(2, rows, processes)
    assert row["moves"] == 5 and row["switch_p50_ms"] == 30.0 and row["switch_p95_ms"] == 500.0
    assert (row["decisions_acknowledged"], row["decisions_on_disk"], row["decisions_equal"]) == (5, 4, False)
    assert row["memory_per_reviewer_mb"] == 250.0 and row["cpu_ms_per_move"] == 300.0


def test_capacity_is_the_largest_n_within_the_target(capacity) -> None:
    """The verdict names the largest N whose p95 is within 200 ms, and the CPU and memory bounds."""
    rows = [
        {"reviewers": 1, "switch_p95_ms": 80.0, "cpu_ms_per_move": 100.0, "memory_per_reviewer_mb": 250.0},
        {"reviewers": 5, "switch_p95_ms": 190.0, "cpu_ms_per_move": 120.0, "memory_per_reviewer_mb": 240.0},
        {"reviewers": 10, "switch_p95_ms": 450.0, "cpu_ms_per_move": 200.0, "memory_per_reviewer_mb": 230.0},
    ]
    verdict = capacity.capacity(rows, interval=2.0, cores=2, memory_mb=24_000)
    assert verdict["largest_n_measured_within_p95"] == 5
    assert verdict["cpu_bound_estimate"] == 10  # half of 2 cores over 2 s at 200 ms per move
    assert verdict["memory_bound_estimate"] == 76
