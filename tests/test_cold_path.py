"""The cold path of a patient switch: isal or zlib, voxels as the header says, both phases at once."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from synthetic import write_case

from cmrqc_widgets.cases import CaseCache, load_case, nifti, reader
from cmrqc_widgets.cases.cache import return_freed_memory
from cmrqc_widgets.render import packing


def test_zlib_fallback_reads_and_packs_the_same_case(case_dir: Path, monkeypatch) -> None:
    """Without python-isal the same voxels are read and the packed volume inflates to the same bytes."""
    fast = load_case(case_dir, "ED")
    fast_packed = packing.pack_case(fast).volume
    monkeypatch.setattr(nifti, "_gunzip", gzip.decompress)
    monkeypatch.setattr(packing, "_isal_compress", None)
    slow = load_case(case_dir, "ED")
    slow_packed = packing.pack_case(slow).volume
    assert np.array_equal(fast.image, slow.image) and np.array_equal(fast.labels, slow.labels)
    for a, b in zip(fast_packed[:2], slow_packed[:2], strict=True):
        assert zlib.decompress(a) == zlib.decompress(b)
    assert fast_packed[2:] == slow_packed[2:]


@pytest.mark.parametrize("byteorder", ["<", ">"])
def test_scaled_integer_image_is_read_as_the_header_says(tmp_path: Path, byteorder: str) -> None:
    """An int16 image with scl_slope 2 and scl_inter 10 (either byte order) reads as float32 2*v + 10."""
    folder = write_case(tmp_path / "p")
    image_path = folder / "lvsa_SR_ED.nii.gz"
    stored = nib.load(image_path)
    values = np.arange(np.prod(stored.shape), dtype=np.int16).reshape(stored.shape) % 1000
    dtype = np.dtype(np.int16).newbyteorder(byteorder)
    img = nib.Nifti1Image(values.astype(dtype), stored.affine, stored.header)
    img.header.set_data_dtype(dtype)
    img.header.set_slope_inter(2.0, 10.0)
    img.to_filename(image_path)
    expected = np.asarray(nib.load(image_path).dataobj, dtype=np.float64)  # nibabel's own scaling
    case = load_case(folder, "ED")
    assert case.image.dtype == np.float32 and not case.image.flags.writeable
    assert np.array_equal(np.sort(case.image, axis=None), np.sort(expected.astype(np.float32), axis=None))


def test_uint8_labels_are_a_read_only_view_of_the_file_bytes(case_dir: Path) -> None:
    """Labels stored as uint8 are not copied: the array is a view of the decompressed file."""
    img = nifti.read_nifti(case_dir / "seg_lvsa_SR_ED.nii.gz")
    labels = nifti.volume(img, case_dir / "seg_lvsa_SR_ED.nii.gz", None)
    if labels.dtype == np.uint8:
        assert labels.base is not None and not labels.flags.writeable
    assert np.array_equal(labels, np.asarray(img.dataobj))


def test_get_phases_reads_each_phase_once(case_dir: Path, monkeypatch) -> None:
    """Both phases come back in the order asked, each file read once, then from the cache."""
    seen: list[Path] = []
    real = reader.read_nifti
    monkeypatch.setattr(reader, "read_nifti", lambda path: seen.append(path) or real(path))
    cache = CaseCache()
    ed, es = cache.get_phases(case_dir)
    assert (ed.phase, es.phase) == ("ED", "ES") and len(seen) == 4
    assert cache.get_phases(case_dir, ["ES", "ED"]) == (es, ed) and len(seen) == 4
    cache.close()


def test_freed_memory_is_returned_on_linux() -> None:
    """The mmap threshold can be set on this (glibc) system; calling twice is harmless."""
    assert return_freed_memory() is True
    assert return_freed_memory() is True
