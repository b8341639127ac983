"""Exports of a dataset: rows, CSV, JSON and a pandas DataFrame."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import pytest

from cmrqc_widgets.store import Dataset, QCStore
from cmrqc_widgets.store.export import ROW_FIELDS


@pytest.fixture
def dataset(tmp_path: Path) -> Dataset:
    ds = QCStore(tmp_path, "alice").create("c.json", ["/data/p1", "/data/p2"])
    ds.save("/data/p1", "ED", "accept", 'good, "clean": yes', seconds=4.0)
    ds.save("/data/p2", "ES", "reject", "leak\ninto atrium")
    return ds


def test_rows_one_per_patient_and_phase(dataset: Dataset) -> None:
    """to_rows gives patient x phase rows in file order with decision, comment, updated and user."""
    rows = dataset.to_rows()
    assert [(r["patient"], r["phase"]) for r in rows] == [
        ("/data/p1", "ED"),
        ("/data/p1", "ES"),
        ("/data/p2", "ED"),
        ("/data/p2", "ES"),
    ]
    assert [r["decision"] for r in rows] == ["accept", "none", "none", "reject"]
    assert rows[0]["comment"] == 'good, "clean": yes'
    assert rows[0]["user"] == "alice"
    assert rows[0]["updated"].endswith("+00:00")
    assert rows[1]["updated"] == ""
    assert rows[1]["user"] == ""
    assert all(tuple(r) == ROW_FIELDS for r in rows)


def test_csv_columns_and_rows(dataset: Dataset, tmp_path: Path) -> None:
    """to_csv writes a header and one quoted row per patient and phase, to a string, path or file."""
    text = dataset.to_csv()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert tuple(rows[0]) == ROW_FIELDS
    assert len(rows) == 4
    assert rows[0]["comment"] == 'good, "clean": yes'
    assert rows[3]["comment"] == "leak\ninto atrium"
    assert rows[3]["decision"] == "reject"
    target = tmp_path / "out.csv"
    assert dataset.to_csv(target) == text
    assert target.read_bytes().decode("utf-8") == text
    handle = io.StringIO()
    dataset.to_csv(handle)
    assert handle.getvalue() == text


def test_json_export(dataset: Dataset) -> None:
    """to_json is a JSON list of the same rows."""
    assert json.loads(dataset.to_json()) == dataset.to_rows()


def test_dataframe_export(dataset: Dataset) -> None:
    """to_dataframe has the row columns and one row per patient and phase."""
    pytest.importorskip("pandas")
    frame = dataset.to_dataframe()
    assert list(frame.columns) == list(ROW_FIELDS)
    assert frame.shape == (4, len(ROW_FIELDS))
    assert frame.loc[3, "decision"] == "reject"


def test_dataframe_without_pandas_says_what_to_install(
    dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without pandas, to_dataframe raises ImportError telling how to install it."""
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="pip install pandas"):
        dataset.to_dataframe()
