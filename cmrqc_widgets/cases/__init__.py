"""Reading cases from any pipeline: file layouts, the NIfTI reader, the case cache, DICOM conversion.

Modules
-------
layouts  where a pipeline puts a patient's image and labels (presets, custom patterns)
reader   :func:`load_case`: one phase's image and labels in the display orientation
nifti    one NIfTI file read once (isal gunzip), voxels without extra copies
cache    :class:`CaseCache`: a thread-safe LRU of cases with background prefetch
dicom    a DICOM short-axis series to NIfTI, geometry kept (needs ``pydicom``)
"""

from .cache import CaseCache
from .layouts import PRESETS, Layout, custom_layout, detect_layout, get_layout
from .nifti import MAX_VOXELS
from .reader import Case, CaseWarning, ImageValueWarning, UnknownLabelWarning, load_case

__all__ = [
    "MAX_VOXELS",
    "PRESETS",
    "Case",
    "CaseCache",
    "CaseWarning",
    "ImageValueWarning",
    "Layout",
    "UnknownLabelWarning",
    "custom_layout",
    "detect_layout",
    "get_layout",
    "load_case",
]
