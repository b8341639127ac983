"""One NIfTI file read into memory once, its voxels taken without extra whole-volume copies.

Guarantees
----------
* A header declaring more than :data:`MAX_VOXELS` voxels is refused before anything is
  decompressed (a corrupt or hostile header must not make the kernel allocate gigabytes).
* A missing, truncated or corrupt file, or one that is not NIfTI, raises :class:`CaseError`
  naming the file, in one sentence.
* The voxels are the header's: the on-disk type, scaled only when ``scl_slope``/``scl_inter`` ask
  for it (as nibabel reads them), in the type the caller asks for.

How, and what it costs
----------------------
The file is read and gunzipped in one call: with ``python-isal`` (``isal.igzip``, a dependency;
about 1.7x faster than zlib on our volumes) where it imports, else the standard library's
``gzip``. Both release the GIL, so a reader thread per phase runs in parallel. nibabel parses
the header from those bytes; the voxels are then a numpy view of the same bytes
(``np.frombuffer``), so the only other whole-volume array is the one converted to the caller's
type, made in one pass (no float64 step): reading a 256x256x80 int16 image into float32 holds
the compressed file, the decompressed bytes and the float32 result, nothing more. A volume
already in the asked type (uint8 labels, float32 images) is the view itself, read-only.
"""

from __future__ import annotations

import gzip
import io
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError
from nibabel.spatialimages import HeaderDataError

from ..errors import CaseError

try:  # python-isal gunzips ~1.7x faster than zlib (same errors, releases the GIL)
    from isal.igzip import decompress as _gunzip
    from isal.isal_zlib import error as _isal_error

    _GZIP_ERRORS: tuple[type[BaseException], ...] = (_isal_error,)
except ImportError:  # pragma: no cover - depends on the environment
    from gzip import decompress as _gunzip

    _GZIP_ERRORS = ()

MAX_VOXELS = 200_000_000
"""Most voxels a NIfTI header may declare (800 MB of float32; a 256x256x80 stack has 5.2 million,
a whole 4D cine of 50 frames about 260 million more than we ever read: we read one 3D volume)."""


def gunzip_backend() -> str:
    """Which library gunzips: ``"isal"`` or ``"zlib"``."""
    return "zlib" if _gunzip is gzip.decompress else "isal"


def read_nifti(path: Path) -> nib.Nifti1Image:
    """Read ``path`` once (gzipped or not) into an in-memory NIfTI image; CaseError if unreadable."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CaseError(f"{path} is missing.") from None
    except IsADirectoryError:
        raise CaseError(f"{path} is a folder, not a NIfTI file.") from None
    except OSError as exc:
        raise CaseError(f"{path} cannot be read ({exc.strerror or exc}).") from None
    if raw[:2] == b"\x1f\x8b":
        check_declared_size(path, _peek_gzip(path, raw))
        try:
            raw = _gunzip(raw)
        except (EOFError, zlib.error, gzip.BadGzipFile, OSError, *_GZIP_ERRORS) as exc:
            raise CaseError(f"{path} is a truncated or corrupt gzip file ({exc}).") from None
    sizeof_hdr = {int.from_bytes(raw[:4], "little"), int.from_bytes(raw[:4], "big")}
    klass = nib.Nifti1Image if 348 in sizeof_hdr else nib.Nifti2Image if 540 in sizeof_hdr else None
    if klass is None:
        raise CaseError(f"{path} is not a NIfTI file (no NIfTI header at the start).")
    check_declared_size(path, raw[:540])
    try:
        img = klass.from_bytes(raw)
    except (HeaderDataError, ImageFileError, ValueError, TypeError, OSError, EOFError) as exc:
        raise CaseError(f"{path} has an unreadable NIfTI header ({exc}).") from None
    needed = img.dataobj.offset + int(np.prod(img.dataobj.shape)) * img.get_data_dtype().itemsize
    if len(raw) < needed:
        raise CaseError(f"{path} is truncated: it holds {len(raw)} bytes, the header needs {needed}.")
    return img


def _peek_gzip(path: Path, raw: bytes) -> bytes:
    """The first 540 decompressed bytes of a gzip stream (enough for either NIfTI header)."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as stream:
            return stream.read(540)
    except (EOFError, zlib.error, gzip.BadGzipFile, OSError) as exc:
        raise CaseError(f"{path} is a truncated or corrupt gzip file ({exc}).") from None


def check_declared_size(path: Path, head: bytes) -> None:
    """Refuse a header declaring more than MAX_VOXELS voxels (before decompressing the rest)."""
    for klass, size in ((nib.Nifti1Header, 348), (nib.Nifti2Header, 540)):
        if len(head) >= size and size in {
            int.from_bytes(head[:4], "little"),
            int.from_bytes(head[:4], "big"),
        }:
            try:
                shape = klass.from_fileobj(io.BytesIO(head[:size])).get_data_shape()
            except (HeaderDataError, ValueError, TypeError) as exc:
                raise CaseError(f"{path} has an unreadable NIfTI header ({exc}).") from None
            voxels = int(np.prod([int(n) for n in shape], dtype=object)) if shape else 0
            if voxels > MAX_VOXELS:
                dims = " x ".join(str(int(n)) for n in shape)
                raise CaseError(
                    f"{path} declares {dims} = {voxels:,} voxels, more than the {MAX_VOXELS:,} we read; "
                    "the header is corrupt or this is not one image volume."
                )
            return


def volume(img: nib.Nifti1Image, path: Path, dtype: type | None) -> np.ndarray:
    """The image's one 3D volume, in ``dtype`` (None: the on-disk type, scaled if the header says so).

    Raises
    ------
    CaseError
        Not one 3D volume (4D files with a single frame are read as 3D), or unreadable voxels.
    """
    shape = img.shape
    if len(shape) > 3 and all(n == 1 for n in shape[3:]):
        shape = shape[:3]
    if len(shape) != 3:
        what = f"{len(shape)}D with shape {tuple(img.shape)}"
        if len(shape) == 4:
            what = f"4D with {shape[3]} frames"
        raise CaseError(f"{path} is {what}; expected one 3D volume.")
    try:
        data = _voxels(img, dtype)
    except (OSError, ValueError, EOFError, zlib.error) as exc:
        raise CaseError(f"{path} voxel data cannot be read ({exc}).") from None
    if dtype is not None and data.dtype != dtype:
        data = data.astype(dtype)
    return data.reshape(shape, order="A")


def _voxels(img: nib.Nifti1Image, dtype: type | None) -> np.ndarray:
    """The voxel array, a view of the bytes :func:`read_nifti` holds wherever possible."""
    proxy = img.dataobj
    buffer = _held_bytes(img)
    slope, inter = float(proxy.slope), float(proxy.inter)
    unscaled = slope == 1.0 and inter == 0.0
    if buffer is None or (not unscaled and (dtype is None or np.dtype(dtype).kind != "f")):
        # Not our in-memory image, or integers scaled by the header: nibabel's own rules.
        return np.asarray(proxy, dtype=dtype)
    raw = np.frombuffer(
        buffer, dtype=proxy.dtype, count=int(np.prod(proxy.shape)), offset=int(proxy.offset)
    ).reshape(proxy.shape, order=proxy.order)
    if unscaled:
        # The view itself when no conversion is asked; else one pass (byte order swapped on the way).
        return raw if dtype is None or raw.dtype == np.dtype(dtype) else raw.astype(dtype)
    out = raw.astype(dtype)  # scaled in place in the final type, never through float64
    if slope != 1.0:
        out *= out.dtype.type(slope)
    if inter != 0.0:
        out += out.dtype.type(inter)
    return out


def _held_bytes(img: nib.Nifti1Image) -> bytes | None:
    """The decompressed file bytes behind an image made by ``from_bytes`` (None otherwise)."""
    fileobj = getattr(img.file_map.get("image"), "fileobj", None)
    # getvalue() of a BytesIO made from bytes and never written returns those very bytes (no
    # copy); getbuffer() would copy them.
    return fileobj.getvalue() if isinstance(fileobj, io.BytesIO) else None
