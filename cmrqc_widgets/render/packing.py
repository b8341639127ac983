"""A case packed for the browser: the MRI as uint8 and the structure codes, deflated, with its identity.

The slice viewer (:class:`~cmrqc_widgets.widgets.slice_viewer.SliceViewer`) sends one phase of one
patient once; the browser then paints every slice from memory. :func:`pack_volume` maps the MRI to
0..255 over robust percentiles of the whole volume (in C order, whatever the reader's strides) and
codes each label by structure, and :func:`deflate` compresses both. A :class:`PackedCase` remembers
which case it was packed from, and :func:`identity_text` is the identity the viewer and the browser
compare, so a volume is never shown under another patient's name.

Pure numpy and zlib (python-isal's faster deflate where it imports): no widgets.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..names import STRUCTURES

try:  # python-isal deflates our volumes 3x faster than zlib at level 1, to the same size
    from isal.isal_zlib import compress as _isal_compress
except ImportError:  # pragma: no cover - depends on the environment
    _isal_compress = None

VIEWS: tuple[str, ...] = ("sa", "hla", "vla")
"""Short axis (``volume[k]``), horizontal long axis (``volume[:, k, :]``), vertical long axis
(``volume[:, :, k]``)."""

UNKNOWN_CODE = 255
"""Structure code of a label value that the label map does not name."""

SCALE_PERCENTILES = (0.5, 99.9)
"""Intensity percentiles of the whole volume mapped to 0 and 255 before sending (wide, so the
reviewer can still widen the window on the client)."""

WINDOW_PERCENTILES = (1.0, 99.5)
"""Percentiles giving the default display window, in the 0..255 units of the sent volume."""

ZLIB_LEVEL = 1
"""Level 1 is several times faster than 6 and only a few percent larger on MRI."""

ZLIB_STRATEGY = zlib.Z_RLE
"""Run-length matches only: twice as fast as the default on MRI (whose noise defeats long
matches anyway) at the same size, and half the size on the mostly-zero structure codes."""


def hex_colour(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


Packed = tuple[bytes, bytes, list[int], list[float]]
"""What :func:`pack_volume` returns: (image bytes, labels bytes, shape, default window)."""



@dataclass(frozen=True)
class PackedCase:
    """A packed volume and the case it was packed from (patient folder and phase).

    Attributes
    ----------
    volume : Packed
        What :func:`pack_volume` returned.
    patient_dir : str
        ``str(case.patient_dir)``.
    phase : str
    key : str
        :func:`volume_key` of the volume: the browser keeps volumes by this key, so two volumes
        with one key are the same bytes of the same case.
    """

    volume: Packed
    patient_dir: str
    phase: str
    key: str = ""
    """Content key (:func:`volume_key`): computed from the bytes when not given."""

    def __post_init__(self) -> None:
        if not self.key:
            object.__setattr__(self, "key", volume_key(self.volume, self.patient_dir, self.phase))

    def belongs_to(self, case: Any) -> bool:
        """Whether this volume was packed from ``case`` (same patient folder and phase)."""
        return (self.patient_dir, self.phase) == case_source(case)


def case_source(case: Any) -> tuple[str, str]:
    """(patient folder, phase) of a case; empty for a bare array holder (tests, notebooks)."""
    return str(getattr(case, "patient_dir", "")), str(getattr(case, "phase", ""))


class CaseMismatchError(ValueError):
    """A volume about to be shown is not the case the review state names."""


def volume_key(volume: Packed, patient_dir: str, phase: str) -> str:
    """Content key of a packed volume: ``"<phase>:<patient folder>#<digest>"``.

    The digest covers both compressed streams, the shape and the default window, so a re-read file
    whose voxels changed gets another key: a volume the browser kept under the old key is never
    taken for it. The phase and folder let the browser check the case a kept volume comes from.
    """
    image, labels, shape, window = volume
    digest = hashlib.blake2b(digest_size=12)
    digest.update(repr((list(shape), list(window), len(image))).encode())
    digest.update(image)
    digest.update(labels)
    return f"{phase}:{patient_dir}#{digest.hexdigest()}"


def identity_text(patient: str, phase: str, serial: int) -> str:
    """The case identity the viewer and the browser compare: ``"<serial>:<phase>:<patient>"``."""
    return f"{int(serial)}:{phase}:{patient}"


PERCENTILE_SAMPLE = 1 << 17  # a fixed stride: the 99.9th percentile is still ~130 samples deep
"""Volumes larger than this many voxels take their percentiles from an even subsample of about
this size (the same figures to a fraction of a grey level, ten times faster on 256x256x80)."""

PARALLEL_DEFLATE_BYTES = 2_000_000
"""Streams at least this large are compressed in two halves on two threads (see :func:`deflate`)."""

PACK_CHUNK_VOXELS = 1 << 20
"""Voxels scaled at a time by :func:`pack_volume` (a 4 MB float32 temporary)."""

_pool: ThreadPoolExecutor | None = None


def deflate(data: bytes | memoryview, level: int = ZLIB_LEVEL) -> bytes:
    """zlib stream of ``data``, as ``zlib.compress`` writes it, faster on large data.

    With python-isal installed (a dependency), one call of its deflate at ``level`` (ISA-L levels
    0-3; level 1 is about three times faster than zlib's level 1 with run-length matches, and as
    small on MRI). Without it, large data is compressed as two independent raw deflate halves on
    two threads (zlib releases the GIL), the first ended by a sync flush, joined under one zlib
    header and the Adler-32 of the whole: one valid zlib stream, a few bytes larger, as ``pigz``
    does; strategy :data:`ZLIB_STRATEGY` throughout.
    """
    global _pool
    if isinstance(data, np.ndarray):
        # Reoriented volumes are views with negative or transposed strides: memoryview casts
        # need C order (and the browser reads the bytes in C order too).
        data = np.ascontiguousarray(data)
    view = memoryview(data).cast("B")
    if _isal_compress is not None:
        return _isal_compress(view, min(int(level), 3))
    if len(view) < PARALLEL_DEFLATE_BYTES:
        compressor = zlib.compressobj(level, zlib.DEFLATED, 15, 9, ZLIB_STRATEGY)
        return compressor.compress(view) + compressor.flush()
    if _pool is None:
        _pool = ThreadPoolExecutor(1, thread_name_prefix="cmrqc-deflate")
    half = len(view) // 2
    second = _pool.submit(_raw_deflate, view[half:], level, True)
    first = _raw_deflate(view[:half], level, False)
    return b"\x78\x01" + first + second.result() + struct.pack(">I", zlib.adler32(view))


def _raw_deflate(view: memoryview, level: int, final: bool) -> bytes:
    compressor = zlib.compressobj(level, zlib.DEFLATED, -15, 9, ZLIB_STRATEGY)
    return compressor.compress(view) + compressor.flush(zlib.Z_FINISH if final else zlib.Z_SYNC_FLUSH)


def structure_codes(
    labels: np.ndarray | None, shape: tuple[int, ...], label_map: Mapping[str, int]
) -> np.ndarray:
    """uint8 structure codes of raw label values (see :func:`pack_volume`), through a lookup table."""
    if labels is None:
        return np.zeros(shape, np.uint8)
    labels = np.asarray(labels)
    known = {int(v): 1 + STRUCTURES.index(n) for n, v in label_map.items() if n in STRUCTURES and v != 0}
    if labels.dtype.kind in "ui" and labels.size:
        low, high = (0, 255) if labels.dtype == np.uint8 else (int(labels.min()), int(labels.max()))
        if low >= 0 and high < 65536:
            lut = np.full(high + 1, UNKNOWN_CODE, np.uint8)
            lut[0] = 0
            for value, code in known.items():
                if 0 < value <= high:
                    lut[value] = code
            return lut[labels]
    codes = np.zeros(shape, np.uint8)
    codes[labels != 0] = UNKNOWN_CODE
    for value, code in known.items():
        codes[labels == value] = code
    return codes


def pack_volume(image: np.ndarray, labels: np.ndarray | None, label_map: Mapping[str, int]) -> Packed:
    """Pack one phase of a case for the browser.

    Parameters
    ----------
    image : numpy.ndarray
        MRI volume ``(slices, rows, cols)``, any real dtype.
    labels : numpy.ndarray or None
        Raw label values, same shape as ``image``; ``None`` sends an empty segmentation.
    label_map : mapping of str to int
        Structure name (one of ``names.STRUCTURES``) to its label value.

    Returns
    -------
    image_bytes : bytes
        zlib stream of the uint8 MRI (C order): intensities between the 0.5 and 99.9 percentiles of
        the whole volume mapped to 0..255, so brightness does not flicker between slices.
    labels_bytes : bytes
        zlib stream of uint8 structure codes: 0 background, ``1 + STRUCTURES.index(name)`` for a
        structure, :data:`UNKNOWN_CODE` for any other non-zero label value.
    shape : list of int
        ``[slices, rows, cols]``.
    default_window : list of float
        ``[low, high]`` display window in the 0..255 units of ``image_bytes``.
    """
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"The image must have 3 dimensions (slices, rows, cols), not shape {image.shape}.")
    if labels is not None and np.shape(labels) != image.shape:
        raise ValueError(f"The labels shape {np.shape(labels)} does not match the image shape {image.shape}.")

    data = image.astype(np.float32, copy=False)
    if data.size and not np.isfinite(data.sum(dtype=np.float64)):
        # NaN/Inf voxels become the darkest finite value: shown dark, and out of the window's way.
        finite = np.isfinite(data)
        low = float(data[finite].min()) if finite.any() else 0.0
        data = np.where(finite, data, np.float32(low))
    stride = max(1, data.size // PERCENTILE_SAMPLE)
    if data.flags.c_contiguous:
        sample = data.ravel()[::stride]
    else:  # the same voxels (C order) without ravel's copy of a reoriented view
        sample = data[np.unravel_index(np.arange(0, data.size, stride), data.shape)]
    q = np.percentile(sample, [*SCALE_PERCENTILES, *WINDOW_PERCENTILES]) if data.size else np.zeros(4)
    lo, hi = float(q[0]), float(q[1])
    if hi <= lo:  # flat image: anything maps to 0
        hi = lo + 1.0
    gain = 255.0 / (hi - lo)
    # Slab by slab, so the float temporary is a few MB, not a second float32 volume (21 MB at
    # 256x256x80); the browser reads [slice, row, col] in C order.
    pixels = np.empty(data.shape, np.uint8)
    step = max(1, PACK_CHUNK_VOXELS // max(1, data[0].size)) if data.size else 1
    for k in range(0, data.shape[0], step):
        part = np.subtract(data[k : k + step], np.float32(lo), dtype=np.float32)
        part *= np.float32(gain)
        np.clip(part, 0, 255, out=part)
        np.rint(part, out=part)
        pixels[k : k + step] = part

    w_low = float(np.clip((q[2] - lo) * gain, 0, 255))
    w_high = float(np.clip((q[3] - lo) * gain, 0, 255))
    if w_high - w_low < 1.0:
        w_low, w_high = 0.0, 255.0

    codes = np.ascontiguousarray(structure_codes(labels, image.shape, label_map))
    return (
        deflate(pixels),
        deflate(codes),
        [int(n) for n in image.shape],
        [round(w_low, 2), round(w_high, 2)],
    )


def pack_case(case: Any) -> PackedCase:
    """:func:`pack_volume` of a case (``image``, ``labels``, ``label_map``, ``patient_dir``, ``phase``)."""
    volume = pack_volume(case.image, case.labels, case.label_map)
    return PackedCase(volume, *case_source(case))


def view_length(shape: list[int] | tuple[int, ...], view: str) -> int:
    """Number of slices of ``view`` for a volume of ``shape`` ``[slices, rows, cols]``."""
    if len(shape) != 3:
        return 0
    return int(shape[VIEWS.index(view)])
