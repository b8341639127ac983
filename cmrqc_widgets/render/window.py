"""Display windows: which intensities map to black and white, computed once per volume.

A :class:`Window` is a ``(low, high)`` intensity range. :func:`auto_window` takes robust
percentiles of the whole volume (not of a slice, so brightness does not jump between slices);
:func:`volume_window` caches that per array object; :func:`to_uint8` applies a window to a slice.
"""

from __future__ import annotations

import math
import threading
import weakref
from dataclasses import dataclass

import numpy as np

_SAMPLE = 1 << 18  # voxels auto_window looks at: more adds time (~5 ms here), not accuracy


@dataclass(frozen=True)
class Window:
    """Intensity window: ``low`` maps to black (0) and ``high`` to white (255).

    Parameters
    ----------
    low, high : float
        Finite intensities with ``low < high``.
    """

    low: float
    high: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "low", float(self.low))
        object.__setattr__(self, "high", float(self.high))
        if not (math.isfinite(self.low) and math.isfinite(self.high)) or self.high <= self.low:
            raise ValueError(f"Window needs finite low < high, got low={self.low!r}, high={self.high!r}.")

    @property
    def level(self) -> float:
        """Centre of the window."""
        return (self.low + self.high) / 2

    @property
    def width(self) -> float:
        """Width of the window."""
        return self.high - self.low

    @classmethod
    def from_level_width(cls, level: float, width: float) -> Window:
        """Window centred on ``level`` spanning ``width`` intensities."""
        return cls(level - width / 2, level + width / 2)


def auto_window(image: np.ndarray, lower: float = 1.0, upper: float = 99.5) -> Window:
    """Robust window of a whole volume from the ``lower`` and ``upper`` percentiles.

    Computed once per volume (not per slice), so brightness does not jump between slices.
    Volumes above 262,144 voxels are subsampled with a fixed stride (deterministic).

    Parameters
    ----------
    image : np.ndarray
        The whole volume (any shape); non-finite values are ignored.
    lower, upper : float
        Percentiles, ``0 <= lower < upper <= 100``.

    Returns
    -------
    Window
        ``high`` is ``low + 1`` when the volume is constant (or has no finite value).
    """
    if not 0 <= lower < upper <= 100:
        raise ValueError(f"Percentiles need 0 <= lower < upper <= 100, got {lower!r} and {upper!r}.")
    volume = np.asarray(image)
    # Percentiles ignore order: read the voxels in memory order, a view even of flipped/transposed data.
    volume = volume[tuple(slice(None, None, -1) if s < 0 else slice(None) for s in volume.strides)]
    flat = np.ravel(volume, order="K")
    if flat.size > _SAMPLE:
        flat = flat[:: -(-flat.size // _SAMPLE)]
    if flat.dtype.kind == "f":
        finite = np.isfinite(flat)
        if not finite.all():
            flat = flat[finite]
    if flat.size == 0:
        return Window(0.0, 1.0)
    low, high = (float(v) for v in np.percentile(flat, [lower, upper]))
    if high <= low:
        high = low + 1.0
    return Window(low, high)


_window_lock = threading.Lock()


_window_cache: dict[int, tuple[weakref.ref[np.ndarray], Window]] = {}


def volume_window(image: np.ndarray) -> Window:
    """:func:`auto_window` of ``image``, computed once per array object and then cached.

    The cache holds weak references only, so it never keeps a volume alive.
    """
    key = id(image)
    with _window_lock:
        hit = _window_cache.get(key)
    if hit is not None and hit[0]() is image:
        return hit[1]
    window = auto_window(image)
    try:
        ref = weakref.ref(image, lambda _ref, key=key: _window_cache.pop(key, None))
    except TypeError:  # an object without weak references: just do not cache it
        return window
    with _window_lock:
        _window_cache[key] = (ref, window)
    return window


def to_uint8(image2d: np.ndarray, window: Window) -> np.ndarray:
    """Map intensities to 0..255 through ``window`` (clipped, rounded; NaN -> 0)."""
    scale = 255.0 / (window.high - window.low)
    out = np.multiply(image2d, np.float32(scale), dtype=np.float32)
    out += np.float32(0.5 - window.low * scale)  # + 0.5 rounds in the cast below
    np.fmax(out, np.float32(0), out=out)  # fmax/fmin, unlike clip, also turn NaN into 0
    np.fmin(out, np.float32(255), out=out)
    return out.astype(np.uint8)
