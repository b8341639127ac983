"""The ``cmrqc`` command: demo cohort, datasets, reviewers, statistics and export.

Every subcommand takes ``--root`` (default ``$CMRQC_ROOT``, then ``~/cmrqc``); those that act
for a reviewer take ``--user`` (default ``$JUPYTERHUB_USER``, then ``$CMRQC_USER``, then the OS
user). A failure prints one sentence to stderr and exits with status 1; a usage error exits
with status 2 (argparse).

Other modules add their own subcommands through a ``register(subparsers)`` function listed in
:data:`REGISTRATIONS`.
"""

from __future__ import annotations

import argparse
import getpass
import importlib
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from ..errors import CaseError, CmrqcError, DatasetError
from ..names import DECISIONS, NO_DECISION, PHASES, resolve_root

__all__ = ["REGISTRATIONS", "build_parser", "find_cases", "main"]

# ------------------------------------------------------------------------------------------------
# Subcommands owned by other modules: the lead wires them in here.
# Each entry is "module:function"; the function is ``register(subparsers) -> None`` and adds
# parsers that ``set_defaults(func=<callable(args) -> int>)``. Imported when the parser is built;
# an entry that fails to import is reported on stderr, never skipped silently.
#   "cmrqc_widgets.cli.serving:register"       serve, hub
#   "cmrqc_widgets.cli.team:register"    metrics, assign, agreement
# ------------------------------------------------------------------------------------------------
REGISTRATIONS: tuple[str, ...] = (
    "cmrqc_widgets.cli.serving:register",  # serve, hub
    "cmrqc_widgets.cli.team:register",  # metrics, assign, agreement
    "cmrqc_widgets.cli.report:register",  # report
    "cmrqc_widgets.cli.dicom:register",  # convert-dicom
)

_ROOT_HELP = "data root (default: $CMRQC_ROOT, then ~/cmrqc)"
_USER_HELP = "reviewer (default: $JUPYTERHUB_USER, then $CMRQC_USER, then the OS user)"


# --- building the parser ------------------------------------------------------------------------


def _add_root(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", metavar="DIR", help=_ROOT_HELP)


def _add_user(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user", metavar="NAME", help=_USER_HELP)


def _whole(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} must be at least {minimum}")
        return value

    return parse


def _subparser(subparsers, name: str, summary: str) -> argparse.ArgumentParser:
    # One line in the command list, the same sentence atop the command's own --help.
    return subparsers.add_parser(name, help=summary, description=summary[0].upper() + summary[1:] + ".")


def build_parser(registrations: Iterable[str] | None = None) -> argparse.ArgumentParser:
    """The ``cmrqc`` argument parser, including the subcommands of ``registrations``."""
    from .. import __version__
    from ..cases.layouts import PRESETS

    parser = argparse.ArgumentParser(
        prog="cmrqc",
        description="Quality control of cardiac MRI segmentations: datasets, reviewers, demo data.",
    )
    parser.add_argument("--version", action="version", version=f"cmrqc_widgets {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = _subparser(commands, "demo", "write the synthetic demo cohort and a dataset listing it")
    _add_root(demo)
    _add_user(demo)
    demo.add_argument("--patients", type=_whole(1), default=10, metavar="N", help="patients (default: 10)")
    demo.add_argument("--seed", type=_whole(0), default=0, help="random seed (default: 0)")
    demo.add_argument("--overwrite", action="store_true", help="regenerate files and reset the dataset")
    demo.set_defaults(func=cmd_demo)

    dataset = _subparser(commands, "dataset", "create and list a reviewer's dataset files")
    dataset_commands = dataset.add_subparsers(dest="dataset_command", metavar="COMMAND", required=True)
    create = _subparser(dataset_commands, "create", "scan folders for cases and write a new dataset file")
    create.add_argument("name", metavar="NAME", help="dataset file name, e.g. cohort or cohort.json")
    create.add_argument("folders", nargs="+", metavar="FOLDER", help="a case folder, or a folder of cases")
    create.add_argument(
        "--layout", choices=sorted(PRESETS), help="case layout (default: detected per folder)"
    )
    create.add_argument("--predictions", metavar="DIR", help="nnU-Net predictions (FOLDER: its images)")
    create.add_argument("--phase-pattern", metavar="REGEX", help="nnU-Net case name to patient and phase")
    create.add_argument("--phase-table", metavar="CSV", help="nnU-Net cases: columns case,patient,phase")
    _add_root(create)
    _add_user(create)
    create.set_defaults(func=cmd_dataset_create)
    listing = _subparser(dataset_commands, "list", "list the reviewer's dataset files")
    _add_root(listing)
    _add_user(listing)
    listing.set_defaults(func=cmd_dataset_list)

    user = _subparser(commands, "user", "manage reviewer credentials (users.json)")
    user_commands = user.add_subparsers(dest="user_command", metavar="COMMAND", required=True)
    add = _subparser(
        user_commands, "add", "add a reviewer or set a new password (prompted, or one line of stdin)"
    )
    add.add_argument("name", metavar="NAME", help="reviewer name")
    add.add_argument("--lead", action="store_true", help="also add to the leads group (the lead's view)")
    add.add_argument(
        "--system",
        action="store_true",
        help="production: give users/NAME/ to the system user NAME (0700, files 0600); run as root",
    )
    _add_root(add)
    add.set_defaults(func=cmd_user_add)
    migrate = _subparser(user_commands, "migrate", "hash the plaintext passwords of a legacy users.json")
    _add_root(migrate)
    migrate.set_defaults(func=cmd_user_migrate)
    users = _subparser(user_commands, "list", "list the reviewers in users.json")
    _add_root(users)
    users.set_defaults(func=cmd_user_list)

    stats = _subparser(commands, "stats", "show decision counts and percentages of a dataset")
    stats.add_argument("dataset", metavar="DATASET", help="dataset file name")
    _add_root(stats)
    _add_user(stats)
    stats.set_defaults(func=cmd_stats)

    export = _subparser(commands, "export", "export a dataset's decisions, one row per patient and phase")
    export.add_argument("dataset", metavar="DATASET", help="dataset file name")
    export.add_argument(
        "--format", choices=("csv", "json"), default="csv", help="output format (default: csv)"
    )
    export.add_argument("--out", metavar="FILE", help="write to FILE instead of stdout")
    _add_root(export)
    _add_user(export)
    export.set_defaults(func=cmd_export)

    for entry in REGISTRATIONS if registrations is None else registrations:
        _register(entry, commands)
    return parser


def _register(entry: str, commands) -> None:
    module_name, _, function = entry.partition(":")
    try:
        register: Callable[..., None] = getattr(importlib.import_module(module_name), function or "register")
    except (ImportError, AttributeError) as exc:
        print(f"cmrqc: the commands of {module_name} are unavailable ({exc}).", file=sys.stderr)
        return
    register(commands)


# --- running ------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``cmrqc`` with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version (0) and usage errors (2)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return int(args.func(args) or 0)
    except CmrqcError as exc:
        _error(str(exc))
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        _error(f"Cannot access{where}: {exc.strerror or exc}.")
    except KeyboardInterrupt:
        _error("Interrupted.")
        return 130
    return 1


def _error(message: str) -> None:
    print(f"cmrqc: {message}", file=sys.stderr)


def _dataset_name(name: str) -> str:
    """Accept ``cohort`` for ``cohort.json``."""
    return name if name.endswith(".json") else f"{name}.json"


def _store(args: argparse.Namespace):
    from ..store import QCStore

    return QCStore(args.root, getattr(args, "user", None))


# --- demo ---------------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    """``cmrqc demo``: write the demo cohort (kept if present) and print the dataset path."""
    from ..demo import DEMO_BROKEN, DEMO_FOLDER, make_demo_cohort, patient_name

    path = make_demo_cohort(
        args.root, args.user, n_patients=args.patients, seed=args.seed, overwrite=args.overwrite
    )
    names = [patient_name(i) for i in range(1, args.patients + 1)]
    broken = [name for name in names if name in DEMO_BROKEN]
    print(
        f"Demo cohort of {args.patients} patients in {resolve_root(args.root) / DEMO_FOLDER}"
        + (f" ({len(broken)} broken on purpose: {', '.join(broken)})." if broken else "."),
        file=sys.stderr,
    )
    print(path)
    return 0


# --- datasets -----------------------------------------------------------------------------------


def _case_layout(folder: Path, layout: str | None):
    """The layout of the case in ``folder``, or None if it holds no case files."""
    from ..cases.layouts import PRESETS, detect_layout

    if layout is None:
        try:
            return detect_layout(folder)
        except CaseError:
            return None
    preset = PRESETS[layout]
    try:
        files = [path for phase in PHASES for path in preset.files(folder, phase)]
    except CaseError:
        return None
    return preset if any(path.exists() for path in files) else None


def find_cases(folders: Iterable[str | Path], layout: str | None = None) -> tuple[list[Path], list[Path]]:
    """Cases in ``folders``: each is a case folder itself, or a folder of case folders.

    Parameters
    ----------
    folders : paths
        Folders to scan (one level deep).
    layout : str, optional
        Preset name; by default each folder's layout is detected.

    Returns
    -------
    (cases, skipped)
        Absolute case folders in scan order (sub-folders sorted by name, no duplicates), and
        the sub-folders that hold no case.

    Raises
    ------
    CaseError
        If a folder does not exist or is not a folder.
    """
    cases: list[Path] = []
    skipped: list[Path] = []
    for folder in folders:
        folder = Path(folder).expanduser().resolve()
        if not folder.is_dir():
            raise CaseError(f"Folder {folder} does not exist or is not a folder.")
        if _case_layout(folder, layout) is not None:
            found = [folder]
        else:
            subs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
            found = [sub for sub in subs if _case_layout(sub, layout) is not None]
            # A folder with no case at all is reported as a whole, not sub-folder by sub-folder.
            skipped.extend([sub for sub in subs if sub not in found] if found else [folder])
        cases.extend(case for case in found if case not in cases)
    return cases, skipped


def _is_system_reviewer(user: str) -> bool:
    """True when root runs this for a reviewer who has an ordinary system account (production (a))."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return False
    import pwd

    try:
        return pwd.getpwnam(user).pw_uid != 0
    except KeyError:
        return False


def cmd_dataset_create(args: argparse.Namespace) -> int:
    """``cmrqc dataset create``: scan folders for cases and write a new dataset file."""
    store = _store(args)
    name = _dataset_name(args.name)
    path = store.path(name)
    if path.exists():
        raise DatasetError(f"Dataset file {path} already exists; choose another name.")
    from .sources import case_sources, created_line

    folders, layout = case_sources(args, store.root, name)
    cases, skipped = find_cases(folders, layout)
    if not cases:
        what = f"{args.layout} cases" if args.layout else "cases of a known layout"
        raise DatasetError(f"No {what} found in {', '.join(args.folders)}; dataset {name} not created.")
    dataset = store.create(name, [str(case) for case in cases])
    print(created_line(dataset.path, cases, store.root))
    if _is_system_reviewer(store.user):
        # Production (system users): root created the file; the reviewer's server must write it.
        from ..serve.accounts import give_to_system_user

        give_to_system_user(store.root, store.user)
        print(f"{dataset.path} belongs to the system user {store.user}.")
    if skipped:
        print(f"Skipped {len(skipped)} folder{'s' * (len(skipped) != 1)} with no case:")
        for folder in skipped:
            print(f"  {folder}")
    return 0


def cmd_dataset_list(args: argparse.Namespace) -> int:
    """``cmrqc dataset list``: the reviewer's dataset file names, one a line."""
    store = _store(args)
    names = store.datasets()
    for name in names:
        print(name)
    if not names:
        print(f"No dataset files in {store.folder}.", file=sys.stderr)
    return 0


# --- users --------------------------------------------------------------------------------------


def _read_password(name: str) -> str:
    if sys.stdin is not None and sys.stdin.isatty():
        first = getpass.getpass(f"Password for {name}: ")
        if getpass.getpass("Repeat the password: ") != first:
            raise CmrqcError("The two passwords differ; nothing was stored.")
    else:
        first = (sys.stdin.readline() if sys.stdin is not None else "").rstrip("\r\n")
    if not first:
        raise CmrqcError("The password is empty; nothing was stored.")
    return first


def cmd_user_add(args: argparse.Namespace) -> int:
    """``cmrqc user add``: store a reviewer's password as a salted hash."""
    from ..names import check_username
    from ..serve.auth import add_user

    name = check_username(args.name)  # before asking for a password
    add_user(args.root, name, _read_password(name), lead=args.lead)
    role = "Lead" if args.lead else "Reviewer"
    print(f"{role} {name} saved in {resolve_root(args.root) / 'users.json'}.")
    if getattr(args, "system", False):
        from ..serve.accounts import set_up_system_user

        print(set_up_system_user(args.root, name, lead=args.lead))
    return 0


def cmd_user_migrate(args: argparse.Namespace) -> int:
    """``cmrqc user migrate``: hash a legacy plaintext users.json in place."""
    from ..serve.auth import migrate_users

    count = migrate_users(args.root)
    path = resolve_root(args.root) / "users.json"
    if count:
        print(f"Hashed {count} plaintext password{'s' * (count != 1)} in {path}.")
    else:
        print(f"No plaintext passwords in {path}; nothing to migrate.")
    return 0


def cmd_user_list(args: argparse.Namespace) -> int:
    """``cmrqc user list``: reviewer names in users.json."""
    from ..serve.auth import leads, load_users

    lead = set(leads(args.root))
    for name in load_users(args.root):
        print(f"{name} (lead)" if name in lead else name)
    return 0


# --- statistics and export ----------------------------------------------------------------------


def format_statistics(stats, title: str) -> str:
    """A text table of decision counts and percentages per phase and overall."""
    columns = (*PHASES, "all")
    lines = [title, f"{'decision':<14}" + "".join(f"{column:>16}" for column in columns)]
    for word in (*DECISIONS, NO_DECISION):
        cells = "".join(f"{stats.counts[c][word]:>7} {stats.percentages[c][word]:>6.1f} %" for c in columns)
        lines.append(f"{word:<14}{cells}")
    decided = "".join(f"{stats.decided(c):>16}" for c in columns)
    lines.append(f"{'decided':<14}{decided}")
    return "\n".join(lines)


def cmd_stats(args: argparse.Namespace) -> int:
    """``cmrqc stats``: decision counts and percentages of one dataset."""
    store = _store(args)
    dataset = store.open(_dataset_name(args.dataset))
    stats = dataset.statistics()
    title = f"{dataset.path.name} ({store.user}): {stats.total} patient{'s' * (stats.total != 1)}"
    print(format_statistics(stats, title))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """``cmrqc export``: the decisions as CSV or JSON, to stdout or a file."""
    store = _store(args)
    dataset = store.open(_dataset_name(args.dataset))
    text = dataset.to_csv() if args.format == "csv" else dataset.to_json()
    if args.out:
        out = Path(args.out).expanduser()
        out.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
        print(f"Wrote {len(dataset.patients) * len(PHASES)} rows to {out}.", file=sys.stderr)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
