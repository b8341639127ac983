"""Team review: split a cohort between reviewers, and measure how well they agree.

:func:`assign` writes one dataset file per reviewer (in their own folder), every file
holding a shared overlap subset plus that reviewer's share of the rest. :func:`agreement`
reads the reviewers' files back and, per phase, gives the percent agreement, Cohen's kappa
(two raters) or Fleiss' kappa (three or more), the confusion matrix (two raters), the
disagreeing cases, and the shared cases some reviewer has not rated yet.

Kappa: Cohen J. A coefficient of agreement for nominal scales. Educ Psychol Meas
1960;20:37-46. Fleiss JL. Measuring nominal scale agreement among many raters. Psychol Bull
1971;76:378-382.
"""

from __future__ import annotations

import csv
import io
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..errors import CmrqcError, DatasetError
from ..names import DECISIONS, PHASES, check_username, resolve_user

__all__ = [
    "AgreementResult",
    "Assignment",
    "PhaseAgreement",
    "agreement",
    "agreement_of",
    "assign",
    "cohen_kappa",
    "confusion_matrix",
    "disagreements_csv",
    "fleiss_kappa",
    "parse_fraction",
    "plot_confusion",
]


# --- kappa --------------------------------------------------------------------------------------


def confusion_matrix(a: Sequence[Any], b: Sequence[Any], categories: Sequence[Any]) -> np.ndarray:
    """Counts of (rating of ``a``, rating of ``b``) pairs: rows follow ``a``, columns ``b``."""
    if len(a) != len(b):
        raise ValueError(f"Both raters must rate the same cases ({len(a)} vs {len(b)} ratings).")
    index = {c: i for i, c in enumerate(categories)}
    matrix = np.zeros((len(categories), len(categories)), np.int64)
    for x, y in zip(a, b, strict=True):
        if x not in index or y not in index:
            raise ValueError(f"Rating {x if x not in index else y!r} is not one of {list(categories)}.")
        matrix[index[x], index[y]] += 1
    return matrix


def cohen_kappa(a: Sequence[Any], b: Sequence[Any], categories: Sequence[Any] | None = None) -> float:
    """Cohen's kappa of two raters: (p_o - p_e) / (1 - p_e); NaN when p_e = 1 (undefined).

    Parameters
    ----------
    a, b : sequences
        The two raters' ratings of the same cases, in the same order.
    categories : sequence, optional
        All possible ratings (default: those seen).
    """
    if not len(a):
        raise ValueError("Cohen's kappa needs at least one case rated by both raters.")
    cats = list(categories) if categories is not None else sorted(set(a) | set(b), key=str)
    m = confusion_matrix(a, b, cats).astype(float)
    n = m.sum()
    po = np.trace(m) / n
    pe = float((m.sum(axis=1) * m.sum(axis=0)).sum() / n**2)
    return float("nan") if np.isclose(pe, 1.0) else float((po - pe) / (1.0 - pe))


def fleiss_kappa(counts: Any) -> float:
    """Fleiss' kappa from a subjects x categories matrix of rater counts; NaN when undefined.

    Every row must sum to the same number of raters (at least two).
    """
    m = np.asarray(counts, dtype=float)
    if m.ndim != 2 or m.shape[0] == 0:
        raise ValueError("Fleiss' kappa needs a subjects x categories matrix with at least one subject.")
    raters = m.sum(axis=1)
    if not np.allclose(raters, raters[0]) or raters[0] < 2:
        raise ValueError("Every subject must be rated by the same number of raters, at least two.")
    n = raters[0]
    p_j = m.sum(axis=0) / m.sum()
    p_i = ((m * m).sum(axis=1) - n) / (n * (n - 1))
    p_bar, pe = p_i.mean(), float((p_j**2).sum())
    return float("nan") if np.isclose(pe, 1.0) else float((p_bar - pe) / (1.0 - pe))


# --- assignment ---------------------------------------------------------------------------------


def parse_fraction(value: str | float) -> float:
    """``"10%"`` or ``"0.1"`` (or 0.1) -> 0.1; :class:`ValueError` outside 0..1."""
    text = str(value).strip()
    try:
        fraction = float(text[:-1]) / 100.0 if text.endswith("%") else float(text)
    except ValueError:
        raise ValueError(f"Overlap {value!r} is not a fraction; use e.g. '10%' or '0.1'.") from None
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"Overlap {value!r} is outside 0-100 %; use e.g. '10%' or '0.1'.")
    return fraction


@dataclass(frozen=True)
class Assignment:
    """Result of :func:`assign`: file name, shared cases, each reviewer's cases and file."""

    dataset: str
    overlap: list[str]
    patients: dict[str, list[str]]
    paths: dict[str, Path]


def _check_users(users: Sequence[str]) -> list[str]:
    users = [check_username(u) for u in users]
    if not users:
        raise CmrqcError("Give at least one reviewer.")
    twice = sorted({u for u in users if users.count(u) > 1})
    if twice:
        raise CmrqcError(f"Reviewer {', '.join(twice)} is listed more than once.")
    return users


def _source_path(store_root: Any, dataset: str | os.PathLike[str], owner: str | None) -> Path:
    from ..store import QCStore

    path = Path(dataset).expanduser()
    if owner is None and path.is_file():
        return path
    source = QCStore(store_root, resolve_user(owner)).path(os.fspath(dataset))
    if not source.is_file():
        raise DatasetError(f"Dataset file {source} does not exist.")
    return source


def assign(
    store_root: str | os.PathLike[str] | None,
    dataset: str | os.PathLike[str],
    users: Sequence[str],
    overlap: float | str = 0.10,
    seed: int = 0,
    owner: str | None = None,
    name: str | None = None,
) -> Assignment:
    """Split the patients of ``dataset`` into one new dataset file per reviewer.

    A random ``overlap`` fraction of the patients (at least one when ``overlap > 0``) goes to
    every reviewer, for agreement; the rest is dealt out evenly. Each file lists its patients
    in the order of the source, with no decisions.

    Parameters
    ----------
    store_root : path or None
        Data root (see :func:`~cmrqc_widgets.names.resolve_root`).
    dataset : path or str
        A dataset file path, or the name of a dataset file of ``owner``.
    users : sequence of str
        The reviewers.
    overlap : float or str
        Shared fraction: ``0.1`` or ``"10%"``.
    seed : int
        Seed of the random split; the same seed gives the same split.
    owner : str, optional
        Whose dataset ``dataset`` names (default: the current user, when ``dataset`` is not
        an existing file).
    name : str, optional
        File name of the new datasets (default: the source's file name).

    Raises
    ------
    DatasetError
        If any reviewer already has a file of that name: nothing is written for anyone.
    """
    from ..store import QCStore, read_dataset_file

    users = _check_users(users)
    fraction = parse_fraction(overlap)
    source = _source_path(store_root, dataset, owner)
    patients = list(read_dataset_file(source))
    out_name = name or source.name
    stores = {u: QCStore(store_root, u) for u in users}
    taken = [str(s.path(out_name)) for s in stores.values() if s.path(out_name).exists()]
    if taken:
        one = len(taken) == 1
        raise DatasetError(
            f"Nothing was assigned: {', '.join(taken)} already exist{'s' if one else ''} "
            f"and {'is' if one else 'are'} never overwritten; choose another name."
        )
    order = list(range(len(patients)))
    random.Random(seed).shuffle(order)
    k = round(fraction * len(patients))
    k = min(max(k, 1 if fraction > 0 else 0), len(patients))
    shared, rest = sorted(order[:k]), order[k:]
    mine = {u: sorted(shared + rest[i :: len(users)]) for i, u in enumerate(users)}
    paths = {}
    for u, store in stores.items():
        paths[u] = store.create(out_name, [patients[i] for i in mine[u]]).path
    return Assignment(
        dataset=out_name,
        overlap=[patients[i] for i in shared],
        patients={u: [patients[i] for i in mine[u]] for u in users},
        paths=paths,
    )


# --- agreement ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PhaseAgreement:
    """Agreement of the raters on one phase.

    ``n`` counts the shared cases rated by every rater; ``percent_agreement`` is the share of
    them on which all raters chose the same decision; ``kappa`` is Cohen's (two raters) or
    Fleiss' (more), ``None`` when undefined (no case, or every rating the same category).
    ``confusion`` (two raters only) has rows for the first rater and columns for the second,
    in the order of ``categories``.
    """

    phase: str
    n: int
    percent_agreement: float | None
    kappa: float | None
    kappa_kind: str
    categories: tuple[str, ...]
    confusion: list[list[int]] | None
    disagreements: list[dict[str, Any]] = field(default_factory=list)
    not_rated_by_all: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class AgreementResult:
    """Result of :func:`agreement`: per-phase :class:`PhaseAgreement` and the shared cases."""

    dataset: str
    users: tuple[str, ...]
    shared: list[str]
    not_shared: int
    phases: dict[str, PhaseAgreement]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (per phase: n, percent_agreement, kappa, and the lists)."""
        return {
            "dataset": self.dataset,
            "users": list(self.users),
            "shared": len(self.shared),
            "not_shared": self.not_shared,
            "phases": {
                p: {
                    "n": a.n,
                    "percent_agreement": a.percent_agreement,
                    "kappa": a.kappa,
                    "kappa_kind": a.kappa_kind,
                    "categories": list(a.categories),
                    "confusion": a.confusion,
                    "disagreements": a.disagreements,
                    "not_rated_by_all": a.not_rated_by_all,
                }
                for p, a in self.phases.items()
            },
        }


def _none_if_nan(value: float) -> float | None:
    return None if value != value else round(value, 4)


def agreement(
    root: str | os.PathLike[str] | None, dataset_name: str, users: Sequence[str]
) -> AgreementResult:
    """Agreement of ``users`` on their files named ``dataset_name``, per phase.

    Only patients present in every reviewer's file count (the overlap of :func:`assign`);
    of those, a case some reviewer has not decided is listed in ``not_rated_by_all``.

    Raises
    ------
    CmrqcError
        Fewer than two reviewers. :class:`DatasetError` if a reviewer's file is missing.
    """
    from ..store import QCStore

    users = _check_users(users)
    if len(users) < 2:
        raise CmrqcError("Agreement needs at least two reviewers.")
    datasets = {u: QCStore(root, u).open(dataset_name) for u in users}
    return agreement_of(dataset_name, {u: ds.decisions() for u, ds in datasets.items()})


def agreement_of(dataset_name: str, decisions: dict[str, dict[str, dict[str, Any]]]) -> AgreementResult:
    """Agreement of reviewers already read: reviewer -> patient -> phase -> Decision.

    The same rules as :func:`agreement`; the first reviewer's patient order is kept.
    """
    users = _check_users(list(decisions))
    if len(users) < 2:
        raise CmrqcError("Agreement needs at least two reviewers.")
    first = list(decisions[users[0]])
    everyone = set.intersection(*(set(d) for d in decisions.values()))
    shared = [p for p in first if p in everyone]
    union = set().union(*(set(d) for d in decisions.values()))
    phases = {}
    for phase in PHASES:
        rated, unrated, disagree = [], [], []
        for p in shared:
            got = {u: decisions[u][p][phase] for u in users}
            missing = [u for u in users if got[u].decision is None]
            if missing:
                unrated.append({"patient": p, "missing": missing})
                continue
            rated.append([got[u].decision for u in users])
            if len({d.decision for d in got.values()}) > 1:
                disagree.append({
                    "patient": p,
                    "decisions": {u: got[u].decision for u in users},
                    "comments": {u: got[u].comment for u in users},
                })
        n = len(rated)
        confusion = None
        if n == 0:
            kappa, kind = float("nan"), "cohen" if len(users) == 2 else "fleiss"
        elif len(users) == 2:
            a, b = [r[0] for r in rated], [r[1] for r in rated]
            kappa, kind = cohen_kappa(a, b, DECISIONS), "cohen"
            confusion = confusion_matrix(a, b, DECISIONS).tolist()
        else:
            counts = [[r.count(c) for c in DECISIONS] for r in rated]
            kappa, kind = fleiss_kappa(counts), "fleiss"
        if len(users) == 2 and confusion is None:
            confusion = np.zeros((len(DECISIONS),) * 2, int).tolist()
        phases[phase] = PhaseAgreement(
            phase=phase,
            n=n,
            percent_agreement=round(100.0 * (n - len(disagree)) / n, 2) if n else None,
            kappa=_none_if_nan(kappa),
            kappa_kind=kind,
            categories=DECISIONS,
            confusion=confusion,
            disagreements=disagree,
            not_rated_by_all=unrated,
        )
    return AgreementResult(dataset_name, tuple(users), shared, len(union) - len(shared), phases)


def disagreements_csv(
    result: AgreementResult, path_or_file: str | os.PathLike[str] | IO[str] | None = None
) -> str:
    """The disagreeing cases as CSV (phase, patient, each reviewer's decision and comment).

    Written to ``path_or_file`` when given; the text is returned either way.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["phase", "patient", *[c for u in result.users for c in (u, f"{u}_comment")]])
    for phase, a in result.phases.items():
        for case in a.disagreements:
            cells = [c for u in result.users for c in (case["decisions"][u], case["comments"][u])]
            writer.writerow([phase, case["patient"], *cells])
    text = buffer.getvalue()
    if path_or_file is not None:
        if hasattr(path_or_file, "write"):
            path_or_file.write(text)
        else:
            Path(path_or_file).write_text(text, encoding="utf-8")
    return text


def plot_confusion(result: AgreementResult, phase: str, ax: Any = None):
    """Heatmap of the two raters' confusion matrix for ``phase``; returns the Axes."""
    a = result.phases[phase.upper()]
    if a.confusion is None:
        raise ValueError(f"A confusion matrix needs exactly two reviewers, not {len(result.users)}.")
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(4.8, 4.2))
    m = np.asarray(a.confusion)
    ax.imshow(m, cmap="Blues", vmin=0, vmax=max(int(m.max()), 1))
    ticks = range(len(a.categories))
    ax.set_xticks(ticks, a.categories, rotation=30, ha="right")
    ax.set_yticks(ticks, a.categories)
    ax.set_xlabel(result.users[1])
    ax.set_ylabel(result.users[0])
    for (i, j), count in np.ndenumerate(m):
        ax.text(j, i, str(count), ha="center", va="center",
                color="white" if count > m.max() / 2 else "black")
    kappa = "undefined" if a.kappa is None else f"{a.kappa:.2f}"
    agree = "-" if a.percent_agreement is None else f"{a.percent_agreement:.0f}%"
    ax.set_title(f"{a.phase}: Cohen's kappa {kappa}, agreement {agree} (n={a.n})")
    return ax
