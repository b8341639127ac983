"""Automatic QC and team review: per-case metrics and checks, cohort batches, assignment and agreement.

Modules
-------
metrics     volumes, mass, ejection fraction and every check of one case, with a suspicion score
shape       rules on one phase's labels alone (ukbb_cardiac rules, islands in ml, myocardial ring)
position    where the structures lie (septum, LV centre across slices, RV side from the affine)
agreement   do the labels sit on the anatomy: image-label contrast, edges, lung/air under labels
physiology  rules across ED and ES (ES = ED, EF, stroke volumes)
score       severities, weights and the flag threshold (the calibration)
report      the per-case report and its CSV rows
faults      realistic failures made from a good case (for the accuracy benchmark and tests)
cohort      metrics of a whole cohort (parallel, resumable, Dask) and the metrics CSV
ranking     using the rows: most suspicious first, flagged patients, the cohort plot
team     splitting a cohort between reviewers, and their agreement (percent, Cohen's, Fleiss' kappa)
"""

from .cohort import cohort_metrics, read_metrics, suspicion_order
from .metrics import CaseReport, Thresholds, case_metrics, metrics_for_patient
from .team import agreement, assign

__all__ = [
    "CaseReport",
    "Thresholds",
    "agreement",
    "assign",
    "case_metrics",
    "cohort_metrics",
    "metrics_for_patient",
    "read_metrics",
    "suspicion_order",
]
