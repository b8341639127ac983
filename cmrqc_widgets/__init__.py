"""cmrqc_widgets: quality control of cardiac MRI segmentations in JupyterLab, Voilà and JupyterHub.

The pure parts (cases, rendering, the decision store) import quickly and never touch
ipywidgets; :class:`ReviewWidget` and :class:`LeadWidget` are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import AuthError, CaseError, CmrqcError, DatasetError, InvalidNameError
from .names import DECISIONS, PHASES, STRUCTURES

__version__ = "0.1.0"

__all__ = [
    "DECISIONS",
    "PHASES",
    "STRUCTURES",
    "AuthError",
    "Case",
    "CaseCache",
    "CaseError",
    "CmrqcError",
    "Dataset",
    "DatasetError",
    "Decision",
    "InvalidNameError",
    "Layout",
    "LeadWidget",
    "QCStore",
    "ReviewWidget",
    "load_case",
]

_LAZY = {
    "Case": "cases",
    "CaseCache": "cases",
    "load_case": "cases",
    "Layout": "cases",
    "QCStore": "store",
    "Dataset": "store",
    "Decision": "store",
    "ReviewWidget": "widgets",
    "LeadWidget": "widgets",
}

if TYPE_CHECKING:
    from .cases import Case, CaseCache, Layout, load_case
    from .store import Dataset, Decision, QCStore
    from .widgets import LeadWidget, ReviewWidget


def __getattr__(name: str) -> Any:
    # Lazy so that `from cmrqc_widgets import QCStore` never pays for ipywidgets/ipyvolume.
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
