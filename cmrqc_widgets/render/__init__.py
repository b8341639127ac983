"""Drawing a case: 2D slices (window, overlay, reformats, PNG) and the 3D point cloud.

Modules
-------
window  display windows (level/width) computed once per volume
slices  label colours, overlays, long-axis reformats, zoom and PNG encoding
points  labelled voxels as 3D points in millimetres, capped for the browser
"""

from .points import Points, case_points, label_points
from .slices import render_labels, render_mri, render_slice_pngs
from .window import Window, auto_window, volume_window

__all__ = [
    "Points",
    "Window",
    "auto_window",
    "case_points",
    "label_points",
    "render_labels",
    "render_mri",
    "render_slice_pngs",
    "volume_window",
]
