"""Automatic QC and team review: per-case metrics and checks, cohort batches, assignment and agreement.

Modules
-------
metrics  volumes, mass, ejection fraction and sanity checks of one case, with a suspicion score
cohort   metrics of a whole cohort (parallel, resumable, Dask), the metrics CSV and suspicion order
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
