"""The shipped notebooks: the one-cell dashboard Voilà serves, and the tutorial run top to bottom."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from cmrqc_widgets.demo import make_demo_cohort

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def run(path: Path, cwd: Path) -> nbformat.NotebookNode:
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    ).execute()
    return notebook


def outputs(notebook: nbformat.NotebookNode) -> list[dict]:
    return [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]


def test_review_notebook_is_one_short_cell() -> None:
    """The dashboard notebook is one short cell a reviewer never needs to read, and has no outputs."""
    notebook = nbformat.read(NOTEBOOKS / "review.ipynb", as_version=4)
    cells = [c for c in notebook.cells if c.cell_type == "code"]
    assert len(cells) == 1
    lines = cells[0].source.strip().splitlines()
    assert lines[-2:] == ["wait_for_request()", "ReviewWidget()"]  # fresh decisions under preheating
    assert len(lines) <= 8
    assert cells[0].outputs == []
    assert notebook.metadata.kernelspec.name == "python3"


@pytest.mark.slow
def test_review_notebook_opens_reviewers_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run as Voilà would, the dashboard finds root and reviewer in the environment and shows the widget."""
    make_demo_cohort(tmp_path, "carol", shape=(64, 64, 6))
    monkeypatch.setenv("CMRQC_ROOT", str(tmp_path))
    monkeypatch.setenv("CMRQC_USER", "carol")
    monkeypatch.delenv("JUPYTERHUB_USER", raising=False)
    notebook = run(NOTEBOOKS / "review.ipynb", tmp_path)
    (result,) = outputs(notebook)
    assert result["output_type"] == "execute_result"
    assert WIDGET_MIME in result["data"]
    assert "carol" in result["data"]["text/plain"] and "demo.json" in result["data"]["text/plain"]
    session = json.loads((tmp_path / "users" / "carol" / ".cmrqc-session").read_text())
    assert session["dataset"] == "demo.json"


@pytest.mark.slow
def test_tutorial_runs_top_to_bottom(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The researchers' tutorial runs without an error and shows its figures, tables and the widget."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the tutorial's temporary data root lands here
    notebook = run(NOTEBOOKS / "tutorial.ipynb", tmp_path)
    produced = outputs(notebook)
    assert not [o for o in produced if o["output_type"] == "error"]
    assert sum("image/png" in o.get("data", {}) for o in produced) >= 2
    assert any("text/html" in o.get("data", {}) and "dataframe" in o["data"]["text/html"] for o in produced)
    assert any(WIDGET_MIME in o.get("data", {}) for o in produced)
    text = "".join(o.get("text", "") for o in produced if o["output_type"] == "stream")
    assert "corrupt gzip" in text or "truncated" in text
    last = produced[-1]["data"]["text/plain"]
    assert "LV and RV labels swapped" in last


KERNEL_DRIVE = """
from cmrqc_widgets import ReviewWidget

w = ReviewWidget(show_3d=True)
w.reject_button.click()
w.comment.value = "checked in a real kernel"
w.next_patient_button.click()
w.handle_key({"event": "keydown", "key": "ArrowRight", "target": {"tagName": "CANVAS"}})
w.state.jump_to("demo009")
w.phase_toggle.value = "ES"
w.volume_view.toggle.value = False
w.volume_view.toggle.value = True
print("log:", len(w.log_output.outputs), w.log_output.outputs[:1])
print("3D:", w.volume_view.figure is not None, w.volume_view.n_point_updates)
"""


@pytest.mark.slow
def test_widget_syncs_over_a_real_comm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In a real kernel (widgets open real comms) clicks, keys, 3D and a broken case log no error."""
    make_demo_cohort(tmp_path, "dave", shape=(64, 64, 6))
    monkeypatch.setenv("CMRQC_ROOT", str(tmp_path))
    monkeypatch.setenv("CMRQC_USER", "dave")
    monkeypatch.delenv("JUPYTERHUB_USER", raising=False)
    later = (  # the event loop runs (the deferred 3D update with it) while this cell awaits
        "import asyncio\nawait asyncio.sleep(1)\n"
        "print('3D later:', w.volume_view._case is w.state.case, len(w.log_output.outputs))"
    )
    cells = [nbformat.v4.new_code_cell(KERNEL_DRIVE), nbformat.v4.new_code_cell(later)]
    notebook = nbformat.v4.new_notebook(cells=cells)
    NotebookClient(notebook, timeout=600, kernel_name="python3").execute()
    text = "".join(o.get("text", "") for o in outputs(notebook))
    assert "log: 0 ()" in text
    # 3D waits for the kernel's event loop (2D first): the cases passed over in the busy cell were
    # never drawn in 3D; once the cell is done, the 3D panel shows the case on screen.
    assert "3D: True 1" in text
    assert "3D later: True 0" in text


def test_lead_notebook_is_one_short_cell() -> None:
    """The lead's notebook is one short cell like the dashboard's, building LeadWidget after the request."""
    notebook = nbformat.read(NOTEBOOKS / "lead.ipynb", as_version=4)
    (cell,) = [c for c in notebook.cells if c.cell_type == "code"]
    assert cell.source.strip().splitlines()[-2:] == ["wait_for_request()", "LeadWidget()"]
    assert cell.outputs == [] and notebook.metadata.kernelspec.name == "python3"
