"""The widgets of cmrqc_widgets: the review screen and its parts.

Only this subpackage imports ipywidgets, anywidget, ipyevents and (lazily) ipyvolume.
"""

from __future__ import annotations

from .kernel import quiet_shutdown
from .lead import LeadWidget
from .review import ReviewWidget
from .slice_viewer import SliceViewer
from .state import ReviewState
from .warmup import warm_up

__all__ = ["LeadWidget", "ReviewState", "ReviewWidget", "SliceViewer", "quiet_shutdown", "warm_up"]
