"""The suspicion score: how each failed check counts, and when a case is flagged.

Guarantees
----------
- Every check measures one quantity against a plausible range. Its **severity** is 0 inside the
  range and grows linearly outside it, in units of the rule's tolerance: severity 1 = one
  tolerance beyond the range (``beyond``). Yes/no rules (a structure missing, a gap) fail with
  severity 1.
- A failed check counts ``weight x min(severity, SEVERITY_CAP)`` in the score, so one absurd value
  cannot drown every other case; the case score is the sum over its failed checks.
- A case is **flagged** when its score reaches :data:`FLAG_SCORE`. Checks of kind ``"extreme"``
  (pathology, not error: a very low EF with a consistent segmentation) are shown as "clinically
  extreme, check" and weigh so little that they never flag a case on their own.

Calibration
-----------
Ranges and tolerances come from physiology and imaging physics (each rule's docstring gives its
source), not from fitting a dataset. The weights then say how strongly a reviewer would reject a
case for that failure: 3-10 for failures that make the segmentation unusable (labels off the
anatomy, a structure missing, swapped labels), 1-2 for failures that make a measurement wrong
(an island, a few slices too few), 0.3 for "extreme but possible". :data:`FLAG_SCORE` = 1 flags a
case as soon as one unusable-kind check is a third of a tolerance outside its range, or a
measurement-kind check a full tolerance. Where an image measure (a ratio or share of the case's
own intensities) needs a number, it sits between what expert labels and a 1-pixel disagreement
give and what the failure gives, on the real Sunnybrook cases and the demo cohort together, never
one dataset (README, "How the thresholds were set"). ``benchmarks/qc_accuracy.py`` measures the result on
real expert segmentations and the demo cohort (README, Triage): the flag rate on good cases and
the ranking of broken ones, per failure kind.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_WEIGHTS", "EXTREME_RULES", "FLAG_SCORE", "SEVERITY_CAP", "Check", "beyond", "is_flagged"]

SEVERITY_CAP = 3.0
"""Highest severity one check contributes (times its weight)."""

FLAG_SCORE = 1.0
"""A case (or phase row) whose score reaches this is flagged for review first."""

DEFAULT_WEIGHTS: dict[str, float] = {
    # reading and bookkeeping
    "unreadable": 10.0,  # a phase whose files cannot be read at all
    "empty": 8.0,  # no label at all in a phase
    "unknown_labels": 1.0,  # label values the layout does not define
    # labels alone (ukbb_cardiac rules and more)
    "missing": 4.0,  # one structure absent or below min_voxels
    "swapped": 5.0,  # LV and RV labels look exchanged
    "gap": 3.0,  # unlabelled slices between labelled ones
    "myo_surround": 3.0,  # LV blood pool not enclosed by myocardium (leak)
    "islands": 2.0,  # detached pieces, by volume in ml
    "few_slices": 2.0,  # LV or MYO on too few slices
    "fragment": 1.0,  # a structure on a slice with fewer than 10 pixels
    "mid_slice": 2.0,  # LV, myocardium or RV absent on the mid-ventricular slice
    "lv_without_myo": 2.0,  # a slice with LV blood pool but no myocardium at all
    "septum": 2.0,  # LV touching RV with no myocardium between them
    "misaligned": 1.5,  # LV centre jumps between neighbouring slices
    "rv_position": 3.0,  # RV not to the patient's right / anterior of the LV
    # labels against the image
    "contrast": 3.0,  # LV label not on bright blood / myocardium label not on dark muscle
    "edges": 3.0,  # label borders not on image edges
    "misplaced": 3.0,  # the LV label fits the image clearly better elsewhere
    "epicardium": 3.0,  # the myocardium's outer rim looks like the tissue around the heart
    "dark": 1.0,  # labels over lung or air
    # both phases
    "es_gt_ed": 3.0,  # a ventricle larger at ES than at ED
    "es_equals_ed": 4.0,  # the ES labels are the ED labels
    "ef_range": 2.0,  # EF physiologically impossible
    "sv_mismatch": 0.6,  # LV and RV stroke volumes differ (Ruijsink 2020): weak alone (regurgitation)
    "volume_range": 1.0,  # EDV outside the plausible range
    "ef_extreme": 0.3,  # EF possible but clinically extreme: check, not an error
}
"""Weight of each rule in the suspicion score (rule id -> weight)."""

EXTREME_RULES = frozenset({"ef_extreme"})
"""Rules that report pathology ("clinically extreme, check"), not a segmentation failure."""


@dataclass(frozen=True)
class Check:
    """One failed rule.

    Attributes
    ----------
    rule : str
        Its id, a key of :data:`DEFAULT_WEIGHTS`.
    message : str
        What failed, in plain words (never contains ``;``: messages are joined with it in CSV).
    weight : float
        What it adds to the score: the rule's weight times its capped severity.
    severity : float
        How far outside the plausible range (1 = one tolerance beyond it).
    slice : int or None
        0-based slice where it fails (worst), or ``None`` for a whole-case check.
    """

    rule: str
    message: str
    weight: float
    severity: float = 1.0
    slice: int | None = None

    @property
    def kind(self) -> str:
        """``"extreme"`` for pathology worth a look, ``"failure"`` for a segmentation error."""
        return "extreme" if self.rule in EXTREME_RULES else "failure"


def beyond(value: float, low: float | None, high: float | None, tolerance: float) -> float:
    """Severity of ``value`` against the plausible range ``[low, high]`` (``None``: unbounded).

    0 inside the range, then the distance outside it divided by ``tolerance``.
    """
    if low is not None and value < low:
        return (low - value) / tolerance
    if high is not None and value > high:
        return (value - high) / tolerance
    return 0.0


def is_flagged(score: float | None) -> bool:
    """Whether a score reaches :data:`FLAG_SCORE`."""
    return score is not None and score >= FLAG_SCORE
