"""Do the labels sit on the anatomy in the image? Image-label agreement measures of one phase.

Every shape rule passes for a perfect segmentation moved 15 mm off the heart, grown into the
background or flipped; only the image shows it. These measures compare the labels with the image
they were drawn on, on balanced steady-state free precession (SSFP/bSSFP) cine, the standard
short-axis sequence, where blood is bright and myocardium dark. They use only ratios and robust
percentiles of the case itself, so the scanner's intensity scale does not matter.

Measures (all in-plane, per slice, pooled over the labelled slices)
-------------------------------------------------------------------
- **blood-pool contrast**: median intensity under the LV label over that under the myocardium
  (or, where a phase has no myocardium label, over the ring 2-5 mm outside the LV). SSFP blood
  is typically 2-4x brighter than myocardium; a ratio near or below 1 means the LV label is not
  on the blood pool (Petitjean C, Dacher JN. A review of segmentation methods in short axis
  cardiac MR images. Med Image Anal 2011;15:169-184, on the blood/myocardium contrast SSFP
  segmenters rely on).
- **edge offset**: label borders should lie on image edges. The mean gradient magnitude is
  binned by signed distance to the border (inside negative); the distance of the strongest bin
  from 0 is how far the border sits from the nearest edge, in mm. Measured for the LV border
  (endocardium) and the outer border of the labelled heart (epicardium, RV free wall).
- **edge strength**: gradient on the border over the gradient 4.5-6 px away from it (both sides):
  near 1 means the border lies on no edge at all.
- **fit gain**: the LV label is moved in-plane by up to 15 mm in every direction; at each move,
  the gradient on its border times the intensity under it says how well it fits (blood bright,
  border on an edge). A label on the anatomy fits best where it is; a misregistered or flipped
  one fits clearly better elsewhere. The ratio needs no absolute threshold of intensity.
- **dark under labels**: share of labelled pixels darker than a tenth of the case's blood level
  (its 99th intensity percentile): lung or air under a heart label.
- **epicardial rim**: the outer 2 pixels of the myocardium label should look like myocardium,
  not like what surrounds the heart. A pixel "looks like myocardium" when its intensity is within
  a factor 2 of the median of the inner wall (the myocardium 2-3 pixels from the blood pool, clear
  of its partial volume). On SSFP, epicardial fat and blood are 2-4x brighter than myocardium and
  lung several times darker, so a label grown outward covers pixels outside that band (Petitjean
  and Dacher 2011, above, on the weak, fat- and lung-dependent contrast of the epicardium). The
  measure is where the rim lies between the surroundings (the ring 3-5 pixels outside, 0) and the
  inner wall (1): ``(rim - outside) / (inner - outside)`` of the myocardium-like shares. Measured
  against the case's own surroundings, tissue outside the heart that looks like muscle (liver,
  chest wall) is allowed for; where wall and surroundings differ by less than 0.2 in that share
  (a heart in tissue of its own intensity) the rim is not judged. An expert epicardium sits on
  the wall's edge and scores about 0.7-1 (half of its outer pixel is partial volume); grown 4
  pixels outward it scores 0.1-0.5 (Sunnybrook and demo cohort, README "QC accuracy"). Image
  features along the segmented boundary as QC of large cohorts: Alba X, Lekadir K,
  Pereanez M, et al. Automatic initialization and quality control of large-scale cardiac MRI
  segmentations. Med Image Anal 2018;43:129-141.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .score import beyond
from .shape import Finding, slices_text

__all__ = ["Agreement", "agreement_findings", "image_agreement"]

_OFFSETS = np.arange(-6, 7)  # profile bins: floor of the signed distance; -1 and 0 straddle the border
_BORDER = (_OFFSETS == -1) | (_OFFSETS == 0)
_AWAY = (_OFFSETS <= -5) | (_OFFSETS >= 4)  # 4.5-6 pixels inside or outside
_MARGIN = 24  # pixels of image kept around the labels: the ±6 px profiles and the fit search
_SEARCH_MM = 15.0  # how far the fit search moves the labels


@dataclass(frozen=True)
class Agreement:
    """Image-label agreement of one phase (``None`` where a measure cannot be made).

    ``contrast`` is the blood-pool contrast ratio, ``lv_edge_mm`` / ``outer_edge_mm`` the
    distance from the LV border / the heart's outer border to the strongest edge, in mm,
    ``lv_edge_strength`` / ``outer_edge_strength`` the border-over-surroundings gradient ratio,
    ``dark_fraction`` the share of labelled pixels on lung or air. ``fit_gain`` is how much
    better the LV label fits the image when moved in-plane (best over moves up to 15 mm, 1.0 =
    it sits where it fits best) and ``fit_offset_mm`` that best move (rows, columns) in mm.
    ``rim_likeness`` is where the myocardium's outer rim lies between the surroundings (0) and the
    inner wall (1) in intensity, ``rim_shares`` the myocardium-like shares of (inner wall, outer
    rim, surroundings) behind it (``None`` without LV and myocardium).
    ``worst_slice`` gives, per measure, the slice (0-based) where it is worst.
    """

    contrast: float | None
    lv_edge_mm: float | None
    lv_edge_strength: float | None
    outer_edge_mm: float | None
    outer_edge_strength: float | None
    dark_fraction: float | None
    worst_slice: dict[str, int]
    outer_is_epicardium: bool = False
    fit_gain: float | None = None
    fit_offset_mm: tuple[float, float] = (0.0, 0.0)
    rim_likeness: float | None = None
    rim_shares: tuple[float, float, float] | None = None


_IN_PLANE_8 = np.zeros((3, 3, 3), bool)
_IN_PLANE_8[1] = True


def _signed_distance(mask: np.ndarray) -> np.ndarray:
    """Per slice, in-plane signed chessboard distance to the border in pixels (inside negative).

    A chamfer transform with an in-plane neighbourhood: each slice on its own, several times faster
    than a Euclidean transform, and exact enough for profiles binned by whole pixels.
    """
    outside = ndimage.distance_transform_cdt(~mask, metric=_IN_PLANE_8).astype(np.float32)
    inside = ndimage.distance_transform_cdt(mask, metric=_IN_PLANE_8).astype(np.float32)
    distance = np.where(mask, 0.5 - inside, outside - 0.5)
    distance[outside < 0] = 99.0  # slices without the mask (the transform marks them -1)
    return distance


def _profile(distance: np.ndarray, gradient: np.ndarray, weights_slices: np.ndarray):
    """Mean gradient per integer signed distance (-6..6) pooled, and per slice."""
    bins = np.floor(distance).astype(np.int64)
    valid = (bins >= _OFFSETS[0]) & (bins <= _OFFSETS[-1])
    n_slices = distance.shape[0]
    index = (np.arange(n_slices)[:, None, None] * len(_OFFSETS) + (bins - _OFFSETS[0]))[valid]
    total = np.bincount(index, weights=gradient[valid], minlength=n_slices * len(_OFFSETS))
    count = np.bincount(index, minlength=n_slices * len(_OFFSETS))
    total, count = total.reshape(n_slices, -1), count.reshape(n_slices, -1)
    total, count = total[weights_slices], count[weights_slices]
    pooled = total.sum(0) / np.maximum(count.sum(0), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_slice = total / count
    return pooled, per_slice


def _edge(profile: np.ndarray, pixel_mm: float) -> tuple[float, float]:
    """(distance in mm from the border to the strongest edge, border-over-surroundings ratio)."""
    peak = _OFFSETS[int(np.nanargmax(profile))] + 0.5
    on_border = float(np.nanmax(profile[_BORDER]))
    away = profile[_AWAY]
    return abs(float(peak)) * pixel_mm, on_border / max(float(np.nanmean(away)), 1e-6)


def image_agreement(
    image: np.ndarray,
    labels: np.ndarray,
    spacing: tuple[float, float, float],
    label_map: Mapping[str, int],
) -> Agreement:
    """Measure how well ``labels`` agree with ``image`` (both ``[slice, row, col]``).

    Parameters
    ----------
    image : ndarray
        Intensities (any scale).
    labels : ndarray
        Label values, same shape.
    spacing : (float, float, float)
        Voxel size in mm along (slice, row, col).
    label_map : Mapping[str, int]
        Structure -> label value; structures not in it are not measured.
    """
    image = np.asarray(image, dtype=np.float32)
    labels = np.asarray(labels)
    fg = labels != 0
    none = Agreement(None, None, None, None, None, None, {})
    if not fg.any() or image.shape != labels.shape:
        return none
    blood_level = float(np.percentile(image[:, ::4, ::4], 99))  # subsampled: percentiles are costly
    rows, cols = np.flatnonzero(fg.any(axis=(0, 2))), np.flatnonzero(fg.any(axis=(0, 1)))
    margin = max(_MARGIN, int(np.ceil(_SEARCH_MM / min(spacing[1:]))) + 8)
    box = (
        slice(None),
        slice(max(rows[0] - margin, 0), rows[-1] + margin + 1),
        slice(max(cols[0] - margin, 0), cols[-1] + margin + 1),
    )
    image, labels, fg = image[box], labels[box], fg[box]
    pixel_mm = float(np.mean(spacing[1:]))
    on = fg.any(axis=(1, 2))
    lv = labels == label_map["LV"] if "LV" in label_map else np.zeros_like(fg)
    myo = labels == label_map["MYO"] if "MYO" in label_map else np.zeros_like(fg)
    worst: dict[str, int] = {}

    contrast = None
    lv_on = lv.any(axis=(1, 2))
    d_lv = _signed_distance(lv) if lv_on.any() else None
    if lv_on.any():
        if myo.any():
            reference = myo
        else:
            ring_px = max(1, round(2.0 / pixel_mm)), max(2, round(5.0 / pixel_mm))
            reference = (d_lv > ring_px[0]) & (d_lv <= ring_px[1])
        blood = float(np.median(image[lv]))
        muscle = float(np.median(image[reference])) if reference.any() else 0.0
        contrast = blood / max(muscle, 1e-3 * max(blood_level, 1e-6))
        # Worst slice by means (cheap); the case ratio above uses medians (robust).
        with np.errstate(invalid="ignore", divide="ignore"):
            blood_k = (image * lv).sum(axis=(1, 2)) / lv.sum(axis=(1, 2))
            muscle_k = (image * reference).sum(axis=(1, 2)) / reference.sum(axis=(1, 2))
            per_slice = np.where(np.isfinite(blood_k / muscle_k), blood_k / muscle_k, np.inf)
        worst["contrast"] = int(np.argmin(per_slice))

    smoothed = ndimage.gaussian_filter(image, sigma=(0, 1, 1))
    gradient = np.hypot(ndimage.sobel(smoothed, axis=1), ndimage.sobel(smoothed, axis=2))
    lv_edge = lv_strength = outer_edge = outer_strength = fit_gain = None
    fit_offset = (0.0, 0.0)
    if lv_on.any():
        fit_gain, fit_offset = _fit(image, gradient, lv, d_lv, spacing)
        pooled, per_slice = _profile(d_lv, gradient, lv_on)
        lv_edge, lv_strength = _edge(pooled, pixel_mm)
        worst["lv_edge"] = int(np.flatnonzero(lv_on)[_worst_slice(per_slice)])
    d_fg = _signed_distance(fg)
    pooled, per_slice = _profile(d_fg, gradient, on)
    outer_edge, outer_strength = _edge(pooled, pixel_mm)
    worst["outer_edge"] = int(np.flatnonzero(on)[_worst_slice(per_slice)])

    rim_likeness, rim_shares = None, None
    if lv_on.any() and myo.any():
        rim_likeness, rim_shares, rim_worst = _epicardial_rim(image, lv, myo, d_lv, fg, d_fg)
        if rim_worst is not None:
            worst["rim"] = rim_worst

    dark = image[fg] < 0.1 * blood_level
    dark_fraction = float(dark.mean())
    worst["dark"] = int(np.argmax([(image[k][fg[k]] < 0.1 * blood_level).sum() for k in range(fg.shape[0])]))
    return Agreement(
        contrast,
        lv_edge,
        lv_strength,
        outer_edge,
        outer_strength,
        dark_fraction,
        worst,
        bool(myo.any()),
        fit_gain,
        fit_offset,
        rim_likeness,
        rim_shares,
    )


_RIM_FACTOR = 2.0  # "looks like myocardium": within this factor of the inner wall's median
_RIM_MIN_PIXELS = 20  # fewer pixels in a region of a slice: that slice is not judged
_RIM_MIN_CONTRAST = 0.2  # inner wall and surroundings must differ by this share of like pixels


def _epicardial_rim(image, lv, myo, d_lv, fg, d_fg):
    """(rim likeness, (inner, rim, outside) myocardium-like shares, worst slice) of one phase.

    The regions, in-plane per slice: the inner wall is myocardium 2-3 pixels from the LV blood
    pool; the rim is the outer 2 pixels of LV + myocardium, at least 2 pixels from the blood pool;
    the surroundings are the ring 3-5 pixels outside LV + myocardium (whatever lies there, RV too).
    """
    heart = lv | myo
    only_heart = int(heart.sum()) == int(fg.sum())  # no RV or other label: d_fg is the heart's
    rows, cols = np.flatnonzero(heart.any(axis=(0, 2))), np.flatnonzero(heart.any(axis=(0, 1)))
    box = (  # the heart and the 5-pixel ring around it: all the distances below need
        slice(None),
        slice(max(rows[0] - 7, 0), rows[-1] + 8),
        slice(max(cols[0] - 7, 0), cols[-1] + 8),
    )
    image, heart, myo, d_lv = image[box], heart[box], myo[box], d_lv[box]
    d_heart = d_fg[box] if only_heart else _signed_distance(heart)
    inner = myo & (d_lv > 1) & (d_lv < 3)
    if not inner.any():
        return None, None, None
    level = float(np.median(image[inner]))
    like = (image > level / _RIM_FACTOR) & (image < level * _RIM_FACTOR)
    rim = (d_heart >= -2) & (d_heart < 0) & (d_lv > 1)
    outside = (d_heart >= 2) & (d_heart < 5)
    counts = np.array([(m.sum(axis=(1, 2)), (m & like).sum(axis=(1, 2))) for m in (inner, rim, outside)])
    total, hits = counts[:, 0].sum(axis=1), counts[:, 1].sum(axis=1)
    if total.min() < _RIM_MIN_PIXELS:
        return None, None, None
    shares = hits / total
    if shares[0] - shares[2] < _RIM_MIN_CONTRAST:
        return None, None, None  # the surroundings look like the wall: nothing to tell them apart
    likeness = float((shares[1] - shares[2]) / (shares[0] - shares[2]))
    with np.errstate(invalid="ignore", divide="ignore"):
        per = counts[:, 1] / counts[:, 0]
        per_slice = (per[1] - per[2]) / (per[0] - per[2])
    judged = (counts[:, 0].min(axis=0) >= _RIM_MIN_PIXELS) & (per[0] - per[2] >= _RIM_MIN_CONTRAST)
    worst = int(np.argmin(np.where(judged, per_slice, np.inf))) if judged.any() else None
    return likeness, (float(shares[0]), float(shares[1]), float(shares[2])), worst


def _fit(image, gradient, lv, d_lv, spacing) -> tuple[float, tuple[float, float]]:
    """How much better the LV label fits moved in-plane: (best fit / fit in place, best move in mm).

    Moves that would take the label off the image are skipped, so flat indices shift exactly.
    """
    rows, cols = lv.shape[1:]
    border = np.flatnonzero(np.abs(d_lv) < 1)
    inside = np.flatnonzero(lv)
    border = border[:: max(1, border.size // 1000)]
    inside = inside[:: max(1, inside.size // 1000)]
    grids = []
    for mm in spacing[1:]:
        step = max(1, round(3.0 / mm))  # moves on a grid of about 3 mm, (0, 0) included
        n = max(1, round(_SEARCH_MM / mm / step))
        grids.append(np.arange(-n, n + 1) * step)
    dr, dc = (g.ravel() for g in np.meshgrid(*grids, indexing="ij"))
    _, r, c = np.unravel_index(np.r_[border, inside], lv.shape)
    on_image = (dr + r.min() >= 0) & (dr + r.max() < rows) & (dc + c.min() >= 0) & (dc + c.max() < cols)
    dr, dc = dr[on_image], dc[on_image]
    shift = (dr * cols + dc)[:, None]
    edge = gradient.ravel()[border[None, :] + shift].mean(axis=1)
    blood = image.ravel()[inside[None, :] + shift].mean(axis=1)
    fit = edge * blood
    here = float(fit[(dr == 0) & (dc == 0)][0])
    best = int(np.argmax(fit))
    return float(fit[best]) / max(here, 1e-12), (float(dr[best] * spacing[1]), float(dc[best] * spacing[2]))


def _worst_slice(per_slice: np.ndarray) -> int:
    """The slice whose border gradient is weakest relative to its surroundings."""
    on_border = np.nanmax(per_slice[:, _BORDER], axis=1)
    away = np.nanmean(per_slice[:, _AWAY], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(np.isfinite(on_border / away), on_border / away, np.inf)
    return int(np.argmin(ratio))


def agreement_findings(
    a: Agreement,
    n_slices: int,
    *,
    min_contrast: float,
    min_edge_strength: float,
    min_outer_edge_strength: float,
    max_dark: float,
    max_fit_gain: float,
    min_rim_likeness: float = 0.55,
) -> list[Finding]:
    """The agreement measures of one phase as findings, with the slice where each is worst."""
    found: list[Finding] = []

    def where(key: str) -> str:
        return f" (worst on {slices_text([a.worst_slice[key]], n_slices)})" if key in a.worst_slice else ""

    if a.contrast is not None:
        severity = beyond(a.contrast, min_contrast, None, 0.4)
        if severity > 0:
            found.append(
                Finding(
                    "contrast",
                    f"LV label not on the bright blood pool: blood-to-muscle ratio {a.contrast:.2f} "
                    f"(at least {min_contrast:g} expected on SSFP cine){where('contrast')}",
                    severity,
                    a.worst_slice.get("contrast"),
                )
            )
    outer_minimum = min_outer_edge_strength if a.outer_is_epicardium else min_edge_strength
    for key, strength, text, minimum in (
        ("lv_edge", a.lv_edge_strength, "LV border", min_edge_strength),
        ("outer_edge", a.outer_edge_strength, "outer border of the heart labels", outer_minimum),
    ):
        if strength is None or (key == "outer_edge" and strength == a.lv_edge_strength):
            continue  # an LV-only phase: its outer border is the LV border, measured once
        severity = beyond(strength, minimum, None, 0.3)
        if severity > 0:
            found.append(
                Finding(
                    "edges",
                    f"{text} not on an image edge: gradient on it {strength:.2f}x that 4.5-6 pixels away "
                    f"(at least {minimum:g}x expected){where(key)}",
                    severity,
                    a.worst_slice.get(key),
                )
            )
    if a.fit_gain is not None:
        severity = beyond(a.fit_gain, None, max_fit_gain, 0.15)
        if severity > 0:
            dr, dc = a.fit_offset_mm
            found.append(
                Finding(
                    "misplaced",
                    f"LV label fits the image {a.fit_gain:.2f}x better moved {np.hypot(dr, dc):.0f} mm "
                    f"({dr:+.0f} mm down, {dc:+.0f} mm across the screen): labels off the heart?",
                    severity,
                    a.worst_slice.get("lv_edge"),
                )
            )
    if a.rim_likeness is not None and a.rim_shares is not None:
        severity = beyond(a.rim_likeness, min_rim_likeness, None, 0.2)
        if severity > 0:
            inner, rim, outside = a.rim_shares
            found.append(
                Finding(
                    "epicardium",
                    f"myocardium label grown beyond the heart wall? Its outer 2 pixels look like the "
                    f"surroundings, not like myocardium: {rim:.0%} have myocardial intensity against "
                    f"{inner:.0%} of the inner wall and {outside:.0%} of the tissue around "
                    f"(likeness {a.rim_likeness:.2f}, at least {min_rim_likeness:g} expected){where('rim')}",
                    severity,
                    a.worst_slice.get("rim"),
                )
            )
    if a.dark_fraction is not None:
        severity = beyond(a.dark_fraction, None, max_dark, 0.2)
        if severity > 0:
            found.append(
                Finding(
                    "dark",
                    f"{a.dark_fraction:.0%} of the labelled pixels are as dark as lung or air{where('dark')}",
                    severity,
                    a.worst_slice.get("dark"),
                )
            )
    return found
