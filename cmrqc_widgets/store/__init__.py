"""The decision store: every reviewer's decisions, durable, shared safely, in the old app's format.

Modules
-------
dataset     :class:`QCStore` (a reviewer's datasets) and :class:`Dataset` (one file's decisions)
journal     the append-only history every save goes to first, and the debounced file rewrite
files       atomic writes and file locks
fileformat  the old Flask app's dataset file: ``{"ED_Comments": "accept:text", ...}``
summary     statistics and history entries read from decisions and the journal
export      decisions as CSV, JSON or a DataFrame
"""

from .dataset import Dataset, UnknownPatientError
from .fileformat import Decision, read_dataset_file
from .qcstore import QCStore
from .summary import HistoryEntry, Statistics

__all__ = [
    "Dataset",
    "Decision",
    "HistoryEntry",
    "QCStore",
    "Statistics",
    "UnknownPatientError",
    "read_dataset_file",
]
