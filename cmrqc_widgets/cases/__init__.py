"""Reading cases from any pipeline: file layouts, the NIfTI reader, the case cache, DICOM conversion.

Modules
-------
layouts  where a pipeline puts a patient's image and labels (presets, custom patterns)
reader   :func:`load_case`: one phase's image and labels in the display orientation
nifti    one NIfTI file read once (isal gunzip), voxels without extra copies
cache    :class:`CaseCache`: a thread-safe LRU of cases with background prefetch
dicom    a DICOM short-axis series to NIfTI, geometry kept (needs ``pydicom``)
"""

import sys as _sys

if "nibabel" not in _sys.modules and "pydicom" not in _sys.modules:
    # nibabel imports pydicom, when installed, only to decode DICOM header extensions of NIfTI
    # files, which we never read: 24 MB and 0.1 s of every kernel. Our DICOM conversion
    # (cases.dicom) imports pydicom itself when a study is converted.
    _sys.modules["pydicom"] = None  # type: ignore[assignment]
    try:
        import nibabel.nifti1  # noqa: F401
    finally:
        if _sys.modules.get("pydicom", 0) is None:
            del _sys.modules["pydicom"]

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
