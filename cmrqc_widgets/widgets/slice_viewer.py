"""Slice viewer that keeps the current patient's volume in the browser.

A kernel round trip per slice (a new PNG in an ``Image`` widget) takes 50-66 ms in the browser,
too slow for a 30 ms slice step or 20 frames/s play. :class:`SliceViewer` therefore sends one
phase of one patient once, as two zlib-compressed uint8 volumes (the MRI mapped to 0..255 and the
structure codes), and the JavaScript side (``slice_viewer.js``) paints slices, reformats, overlay,
window/level and zoom from memory. The kernel stays the source of truth: every setting is a synced
trait, so key handlers and tests change ``slice_index``, ``view`` or ``alpha`` without a browser.

Arrays are indexed ``[slice, row, col]`` in display orientation (see ``cmrqc_widgets.cases.reader``).

Never the wrong patient: every volume sent carries the identity of the case it was packed from
(``volume_id``, ``"<serial>:<phase>:<patient>"``), and ``case_id`` holds the identity the review
state currently shows. :meth:`SliceViewer.show_case` refuses a packed volume of another case, and
the browser refuses to paint a volume whose ``volume_id`` is not ``case_id``: it blanks the images
and says "could not show <patient> <phase>" instead.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import traitlets

from ..names import STRUCTURE_COLOURS, STRUCTURES
from ..render.orientation import edge_letters

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


def _hex(rgb: tuple[int, int, int]) -> str:
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
    """

    volume: Packed
    patient_dir: str
    phase: str

    def belongs_to(self, case: Any) -> bool:
        """Whether this volume was packed from ``case`` (same patient folder and phase)."""
        return (self.patient_dir, self.phase) == _source(case)


def _source(case: Any) -> tuple[str, str]:
    """(patient folder, phase) of a case; empty for a bare array holder (tests, notebooks)."""
    return str(getattr(case, "patient_dir", "")), str(getattr(case, "phase", ""))


class CaseMismatchError(ValueError):
    """A volume about to be shown is not the case the review state names."""


def identity_text(patient: str, phase: str, serial: int) -> str:
    """The case identity the viewer and the browser compare: ``"<serial>:<phase>:<patient>"``."""
    return f"{int(serial)}:{phase}:{patient}"


PERCENTILE_SAMPLE = 1 << 17  # a fixed stride: the 99.9th percentile is still ~130 samples deep
"""Volumes larger than this many voxels take their percentiles from an even subsample of about
this size (the same figures to a fraction of a grey level, ten times faster on 256x256x80)."""

PARALLEL_DEFLATE_BYTES = 2_000_000
"""Streams at least this large are compressed in two halves on two threads (see :func:`deflate`)."""

_pool: ThreadPoolExecutor | None = None


def deflate(data: bytes | memoryview, level: int = ZLIB_LEVEL) -> bytes:
    """zlib stream of ``data``, as ``zlib.compress`` writes it, faster on large data.

    Large data is compressed as two independent raw deflate halves on two threads (zlib releases
    the GIL), the first ended by a sync flush, joined under one zlib header and the Adler-32 of
    the whole: one valid zlib stream, a few bytes larger, as ``pigz`` does. Strategy
    :data:`ZLIB_STRATEGY` throughout.
    """
    global _pool
    if isinstance(data, np.ndarray):
        # Reoriented volumes are views with negative or transposed strides: memoryview casts
        # need C order (and the browser reads the bytes in C order too).
        data = np.ascontiguousarray(data)
    view = memoryview(data).cast("B")
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
    sample = data.ravel()[:: max(1, data.size // PERCENTILE_SAMPLE)]
    q = np.percentile(sample, [*SCALE_PERCENTILES, *WINDOW_PERCENTILES]) if data.size else np.zeros(4)
    lo, hi = float(q[0]), float(q[1])
    if hi <= lo:  # flat image: anything maps to 0
        hi = lo + 1.0
    gain = 255.0 / (hi - lo)
    scaled = np.subtract(data, np.float32(lo), dtype=np.float32)
    scaled *= np.float32(gain)
    np.clip(scaled, 0, 255, out=scaled)
    np.rint(scaled, out=scaled)
    # astype keeps the input's memory layout (order "K"); the browser reads [slice, row, col] C order.
    pixels = scaled.astype(np.uint8, order="C")
    del scaled

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
    return PackedCase(volume, *_source(case))


def view_length(shape: list[int] | tuple[int, ...], view: str) -> int:
    """Number of slices of ``view`` for a volume of ``shape`` ``[slices, rows, cols]``."""
    if len(shape) != 3:
        return 0
    return int(shape[VIEWS.index(view)])


class SliceViewer(anywidget.AnyWidget):
    """MRI with overlay and the labels alone, side by side, painted in the browser.

    Examples
    --------
    >>> viewer = SliceViewer()
    >>> viewer.show_case(case)          # one message with the whole phase
    >>> viewer.slice_index = 3          # painted on the client, no image sent
    >>> viewer.step(-1); viewer.view = "hla"; viewer.alpha = 0.6
    """

    _esm = Path(__file__).with_name("slice_viewer.js")
    _css = Path(__file__).with_name("slice_viewer.css")

    image = traitlets.Bytes(b"").tag(sync=True)
    labels = traitlets.Bytes(b"").tag(sync=True)
    shape = traitlets.List(traitlets.Int(), default_value=[0, 0, 0]).tag(sync=True)
    spacing = traitlets.List(traitlets.Float(), default_value=[1.0, 1.0, 1.0]).tag(sync=True)

    slice_index = traitlets.Int(0).tag(sync=True)
    view = traitlets.Enum(VIEWS, default_value="sa").tag(sync=True)
    overlay = traitlets.Bool(True).tag(sync=True)
    alpha = traitlets.Float(0.4).tag(sync=True)
    window = traitlets.List(traitlets.Float(), default_value=[0.0, 255.0]).tag(sync=True)
    zoom = traitlets.Float(1.0).tag(sync=True)
    visible = traitlets.List(traitlets.Unicode(), default_value=list(STRUCTURES)).tag(sync=True)
    structures = traitlets.List(traitlets.Unicode(), default_value=list(STRUCTURES), read_only=True).tag(
        sync=True
    )
    """Structure code ``i + 1`` is ``structures[i]`` (names.STRUCTURES), so the client needs no copy."""
    colours = traitlets.Dict(default_value={name: _hex(rgb) for name, rgb in STRUCTURE_COLOURS.items()}).tag(
        sync=True
    )
    playing = traitlets.Bool(False).tag(sync=True)
    fps = traitlets.Int(5).tag(sync=True)
    message = traitlets.Unicode("").tag(sync=True)
    orientation = traitlets.Dict(default_value={}).tag(sync=True)
    """Letters at the image edges per view, ``{"sa": {"left": "R", "right": "L", "top": "A", ...}}``
    (:func:`~cmrqc_widgets.render.orientation.edge_letters` of the case's affine)."""
    case_id = traitlets.Unicode("").tag(sync=True)
    """Identity of the case the review state shows (:func:`identity_text`); the browser paints only
    a volume whose ``volume_id`` equals it."""
    volume_id = traitlets.Unicode("").tag(sync=True)
    """Identity of the case ``image`` and ``labels`` were packed from ('' when none)."""

    default_window = traitlets.List(traitlets.Float(), default_value=[0.0, 255.0])
    """Robust window of the current volume (not synced): what a "reset window" control restores."""

    @property
    def n_slices(self) -> int:
        """Number of slices of the current view (0 when no volume is shown)."""
        return view_length(self.shape, self.view)

    @property
    def shows_current(self) -> bool:
        """Whether the volume held is the case named by ``case_id`` (False when none is held)."""
        return bool(self.volume_id) and self.volume_id == self.case_id and bool(self.image)

    @traitlets.validate("slice_index")
    def _clamp_slice(self, proposal: dict[str, Any]) -> int:
        # Remember the index asked for: a view or volume arriving just after it (the order of
        # linked traits is not ours to choose) clamps against the new length, not the old one.
        self._wanted_slice = int(proposal["value"])
        return int(min(max(proposal["value"], 0), max(self.n_slices - 1, 0)))

    @traitlets.validate("alpha")
    def _clamp_alpha(self, proposal: dict[str, Any]) -> float:
        return float(min(max(proposal["value"], 0.0), 1.0))

    @traitlets.validate("zoom")
    def _clamp_zoom(self, proposal: dict[str, Any]) -> float:
        return float(min(max(proposal["value"], 0.5), 3.0))

    @traitlets.validate("fps")
    def _clamp_fps(self, proposal: dict[str, Any]) -> int:
        return int(min(max(proposal["value"], 1), 20))

    @traitlets.validate("window")
    def _check_window(self, proposal: dict[str, Any]) -> list[float]:
        value = list(proposal["value"])
        if len(value) != 2:
            raise traitlets.TraitError(f"The window must be [low, high], not {value!r}.")
        low, high = (min(max(float(v), 0.0), 255.0) for v in value)
        if high <= low:
            raise traitlets.TraitError(f"The window high ({high}) must be above its low ({low}).")
        return [low, high]

    @traitlets.validate("visible")
    def _check_visible(self, proposal: dict[str, Any]) -> list[str]:
        unknown = [name for name in proposal["value"] if name not in STRUCTURES]
        if unknown:
            raise traitlets.TraitError(f"Unknown structures {unknown}; use names from {list(STRUCTURES)}.")
        return list(proposal["value"])

    @traitlets.observe("view", "shape")
    def _reclamp_slice(self, change: dict[str, Any]) -> None:
        # Re-validate against the new view length; the validator does the clamping.
        self.slice_index = getattr(self, "_wanted_slice", self.slice_index)

    def show_case(
        self,
        case: Any,
        slice_index: int | None = None,
        packed: PackedCase | None = None,
        identity: str | None = None,
    ) -> None:
        """Send one phase of a case to the browser in a single message.

        Parameters
        ----------
        case : Case
            Anything with ``image`` (slices, rows, cols), ``labels``, ``label_map``, ``spacing``,
            ``patient_dir`` and ``phase``.
        slice_index : int, optional
            Slice to show; by default the current index, clamped to the new volume.
        packed : PackedCase, optional
            :func:`pack_case` of ``case`` when already computed (e.g. by the prefetch).
        identity : str, optional
            The review state's identity of this case (:func:`identity_text`); it must equal
            ``case_id`` (linked from the state). Standalone, both are derived from the case.

        Raises
        ------
        CaseMismatchError
            ``packed`` was packed from another case, or ``identity`` is not ``case_id``.
        """
        if packed is None:
            packed = pack_case(case)
        if not packed.belongs_to(case):
            raise CaseMismatchError(
                f"the volume packed from {Path(packed.patient_dir).name} {packed.phase} "
                "is not the case to show, {} {}".format(Path(_source(case)[0]).name, _source(case)[1])
            )
        if identity is None:
            identity = identity_text(Path(_source(case)[0]).name, _source(case)[1], 0)
            case_id = identity
        else:
            case_id = self.case_id
            if identity != case_id:
                raise CaseMismatchError(f"the case {identity!r} is not the one on screen, {case_id!r}")
        image_bytes, labels_bytes, shape, window = packed.volume
        index = self.slice_index if slice_index is None else slice_index
        with self.hold_sync():
            self.case_id = case_id
            self.volume_id = identity
            self.image = image_bytes
            self.labels = labels_bytes
            self.spacing = [float(s) for s in case.spacing]
            affine = getattr(case, "affine", None)
            self.orientation = edge_letters(affine) if affine is not None else {}
            self.shape = shape
            self.default_window = window
            self.window = window
            self.slice_index = index
            self.message = ""

    def show_message(self, text: str) -> None:
        """Drop the volume and show ``text`` (a case error, "no patients") instead of the images."""
        with self.hold_sync():
            self.playing = False
            self.volume_id = ""
            self.orientation = {}
            self.image = b""
            self.labels = b""
            self.shape = [0, 0, 0]
            self.slice_index = 0
            self.message = text or "Nothing to show."

    def step(self, delta: int) -> int:
        """Move ``delta`` slices (clamped, no wrap) and return the new index."""
        self.slice_index = self.slice_index + int(delta)
        return self.slice_index

    def set_view(self, view: str, index: int | None = None) -> None:
        """Switch view and go to ``index``, by default the middle slice of the new view."""
        with self.hold_sync():
            self.view = view
            self.slice_index = self.n_slices // 2 if index is None else index

    def volume_nbytes(self) -> int:
        """Bytes of the volume as sent to the browser (both compressed streams)."""
        return len(self.image) + len(self.labels)
