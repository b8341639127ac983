"""``cmrqc metrics``, ``cmrqc assign`` and ``cmrqc agreement``: triage and team review commands.

:func:`register` adds the three subcommands to the ``cmrqc`` parser (see
:mod:`cmrqc_widgets.cli.core`); each handler returns an exit status and raises
:class:`~cmrqc_widgets.errors.CmrqcError` for a failure the user can fix.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from ..cases.layouts import PRESETS
from ..errors import DatasetError

__all__ = ["cmd_agreement", "cmd_assign", "cmd_metrics", "register"]

_ROOT_HELP = "data root (default: $CMRQC_ROOT, then ~/cmrqc)"


def _fraction(text: str) -> float:
    from ..qc.team import parse_fraction

    try:
        return parse_fraction(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _parser(subparsers, name: str, summary: str) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(name, help=summary, description=summary[0].upper() + summary[1:] + ".")
    parser.add_argument("--root", metavar="DIR", help=_ROOT_HELP)
    return parser


def register(subparsers) -> None:
    """Add the ``metrics``, ``assign`` and ``agreement`` subcommands to ``subparsers``."""
    m = _parser(subparsers, "metrics", "measure volumes, EF and sanity checks of a cohort into a CSV")
    m.add_argument("source", metavar="DATASET_OR_FOLDER",
                   help="a dataset file, a dataset name of --user, or a folder of patient folders")
    m.add_argument("--out", default="metrics.csv", metavar="CSV",
                   help="output CSV; patients already in it are skipped (default: metrics.csv)")
    m.add_argument("--workers", type=_positive, default=1, metavar="N", help="local worker processes")
    m.add_argument("--scheduler", metavar="ADDRESS", help="run on a Dask cluster, e.g. tcp://host:8786")
    m.add_argument("--layout", choices=sorted(PRESETS), help="file layout of the patients (default: detect)")
    m.add_argument("--user", metavar="NAME", help="whose dataset a dataset name refers to")
    m.add_argument("--quiet", action="store_true", help="no progress bar")
    m.set_defaults(func=cmd_metrics)

    a = _parser(subparsers, "assign", "split a dataset into one file per reviewer, with a shared overlap")
    a.add_argument("dataset", metavar="DATASET", help="a dataset file, or a dataset name of --user")
    a.add_argument("--users", nargs="+", required=True, metavar="NAME", help="the reviewers")
    a.add_argument("--overlap", type=_fraction, default=0.10, metavar="FRACTION",
                   help="share given to every reviewer, e.g. 10%% or 0.1 (default: 10%%)")
    a.add_argument("--seed", type=int, default=0, help="seed of the random split (default: 0)")
    a.add_argument("--name", metavar="FILE", help="name of the new files (default: the dataset's name)")
    a.add_argument("--user", metavar="NAME", help="owner of DATASET when it is a name")
    a.set_defaults(func=cmd_assign)

    g = _parser(subparsers, "agreement", "agreement between reviewers on their copies of a dataset")
    g.add_argument("dataset", metavar="DATASET", help="dataset name in every reviewer's folder")
    g.add_argument("--users", nargs="+", required=True, metavar="NAME", help="the reviewers (two or more)")
    g.add_argument("--json", action="store_true", help="print the result as JSON")
    g.add_argument("--disagreements", metavar="CSV", help="write the disagreeing cases to this CSV")
    g.set_defaults(func=cmd_agreement)


def _dataset_name(name: str) -> str:
    return name if name.endswith(".json") else f"{name}.json"


def cmd_metrics(args: argparse.Namespace) -> int:
    """``cmrqc metrics``: write the metrics CSV and print a summary; 1 if some case crashed."""
    from ..qc.cohort import cohort_metrics, suspicion_order
    from ..store import QCStore

    source, root = Path(args.source).expanduser(), args.root
    if not source.exists():
        store = QCStore(args.root, args.user)
        root = store.root
        source = store.path(_dataset_name(args.source))
        if not source.is_file():
            raise DatasetError(
                f"{args.source} is not a file or folder, nor a dataset of {store.user} ({source})."
            )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # crashes are listed below, one line each
        run = cohort_metrics(source, args.out, workers=args.workers, scheduler=args.scheduler,
                             progress=not args.quiet, layout=args.layout, root=root)
    order = suspicion_order(run.rows)
    scores = {r["patient"]: r["case_suspicion"] or 0 for r in run.rows}
    flagged = [p for p in order if scores[p] > 0]
    print(f"Measured {len(run.processed)} patients into {run.out_csv} "
          f"({len(run.skipped)} were already there); {len(flagged)} of {len(order)} flagged.")
    if flagged:
        print("Most suspicious first: " + ", ".join(Path(p).name for p in flagged[:10])
              + (" ..." if len(flagged) > 10 else ""))
    for patient, error in run.errors.items():
        print(f"cmrqc: metrics of {patient} failed ({error}).", file=sys.stderr)
    if run.errors:
        print(f"cmrqc: {len(run.errors)} patients were left out; run the command again to retry them.",
              file=sys.stderr)
        return 1
    return 0


def cmd_assign(args: argparse.Namespace) -> int:
    """``cmrqc assign``: write each reviewer's file and print who got how many cases."""
    from ..qc.team import assign

    path = Path(args.dataset).expanduser()
    if path.is_file():
        dataset, owner = path, None
    else:
        dataset, owner = _dataset_name(args.dataset), args.user
    result = assign(args.root, dataset, args.users, overlap=args.overlap, seed=args.seed,
                    owner=owner, name=args.name and _dataset_name(args.name))
    counts = ", ".join(f"{u} {len(p)}" for u, p in result.patients.items())
    total = len(set().union(*map(set, result.patients.values())))
    print(f"Assigned {total} patients as {result.dataset} to {len(result.patients)} reviewers, "
          f"{len(result.overlap)} shared by all: {counts}.")
    return 0


def cmd_agreement(args: argparse.Namespace) -> int:
    """``cmrqc agreement``: print per-phase agreement (or JSON); optionally the disagreements CSV."""
    from ..qc.team import agreement, disagreements_csv

    result = agreement(args.root, _dataset_name(args.dataset), args.users)
    if args.disagreements:
        disagreements_csv(result, args.disagreements)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(f"{len(result.shared)} cases shared by {', '.join(result.users)} in {result.dataset}.")
        for phase, a in result.phases.items():
            name = "Cohen's" if a.kappa_kind == "cohen" else "Fleiss'"
            kappa = "undefined" if a.kappa is None else f"{a.kappa:.3f}"
            agree = "-" if a.percent_agreement is None else f"{a.percent_agreement:.1f}%"
            print(f"{phase}: n={a.n}, agreement {agree}, {name} kappa {kappa}, "
                  f"{len(a.disagreements)} disagreements, {len(a.not_rated_by_all)} not rated by all")
    if args.disagreements:
        total = sum(len(a.disagreements) for a in result.phases.values())
        print(f"Wrote {total} disagreements to {args.disagreements}.",
              file=sys.stderr if args.json else sys.stdout)
    return 0
