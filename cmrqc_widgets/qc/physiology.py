"""Rules across the two phases: volumes and function that a beating heart can and cannot have.

Sources
-------
- Petersen SE, Aung N, Sanghvi MM, et al. Reference ranges for cardiac structure and function
  using CMR in Caucasians from the UK Biobank population cohort. J Cardiovasc Magn Reson
  2017;19:18 (doi:10.1186/s12968-017-0327-9): healthy LV EF about 58 +- 5 % (men), 61 +- 5 %
  (women), LV EDV of the order of 100-250 ml. Our ranges are far wider on purpose: diseased
  hearts pass, only impossible values fail.
- Ruijsink B, Puyol-Anton E, Oksuz I, et al. Fully automated, quality-controlled cardiac analysis
  from CMR. JACC Cardiovasc Imaging 2020;13(3):684-695 (doi:10.1016/j.jcmg.2019.05.030):
  post-analysis QC of the derived function; without a shunt or major valve regurgitation the two
  ventricles eject the same stroke volume, so LV and RV stroke volumes should agree within about
  10-15 %; ED volume larger than ES volume for each ventricle.
- Pathology is not an error: severe dilated cardiomyopathy reaches an LV EF under 10 % (the
  Sunnybrook and ACDC cohorts hold EFs of 10-20 %). An EF under 20 % or over 80 % with a
  consistent segmentation is reported as "clinically extreme, check" at a low weight; only an EF
  no living heart at rest has (under 3 %, over 90 %) or ES labels identical to ED are failures.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .shape import Finding

__all__ = ["function_findings", "phases_identical"]


def phases_identical(ed: np.ndarray, es: np.ndarray) -> float:
    """Dice overlap of the labelled voxels of ED and ES (1.0 = the same labels, same values)."""
    if ed.shape != es.shape:
        return 0.0
    a, b = ed != 0, es != 0
    total = int(a.sum() + b.sum())
    if total == 0:
        return 0.0
    same = int(((ed == es) & a).sum())
    return 2.0 * same / total


def function_findings(
    volumes: dict[str, tuple[float, float]],
    *,
    ef_range: tuple[float, float],
    ef_typical: tuple[float, float],
    sv_tolerance: float,
    overlap: float | None,
    add: Callable[[Finding], None],
) -> None:
    """Pair rules from ``volumes`` (structure -> (EDV, ESV) in ml, measured ventricles only).

    ``overlap`` is the Dice of the ED and ES labels (``None`` if unknown); every finding goes to ``add``.
    """
    if overlap is not None and overlap >= 0.98:
        add(Finding("es_equals_ed", f"ES labels are the ED labels ({overlap:.0%} overlap): ES = ED?", 1.0))
    for s, (edv, esv) in volumes.items():
        ef = 100.0 * (edv - esv) / edv if edv > 0 else 0.0
        lo, hi = ef_range
        if esv > edv:
            add(
                Finding(
                    "es_gt_ed",
                    f"{s} larger at ES ({esv:.0f} ml) than at ED ({edv:.0f} ml)",
                    1.0 + (esv - edv) / edv / 0.1,
                )
            )
        elif not lo <= ef <= hi:
            add(
                Finding(
                    "ef_range", f"{s} ejection fraction {ef:.0f}% outside the plausible range {lo:g}-{hi:g}%"
                )
            )
        elif not ef_typical[0] <= ef <= ef_typical[1]:
            add(
                Finding(
                    "ef_extreme",
                    f"{s} ejection fraction {ef:.0f}% (outside {ef_typical[0]:g}-{ef_typical[1]:g}%): "
                    "clinically extreme, check",
                )
            )
    if {"LV", "RV"} <= set(volumes):
        sv = {s: volumes[s][0] - volumes[s][1] for s in ("LV", "RV")}
        if min(sv.values()) > 0:
            mismatch = abs(sv["LV"] - sv["RV"]) / max(sv.values())
            if mismatch > sv_tolerance:
                add(
                    Finding(
                        "sv_mismatch",
                        f"LV and RV stroke volumes differ by {mismatch:.0%} "
                        f"({sv['LV']:.0f} vs {sv['RV']:.0f} ml, "
                        f"at most {sv_tolerance:.0%} expected without shunt or regurgitation)",
                        (mismatch - sv_tolerance) / 0.3,
                    )
                )
