"""The ``cmrqc`` command, run in-process through ``main([...])`` with temporary data roots."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest
from synthetic import write_case

from cmrqc_widgets.cli import core as cli
from cmrqc_widgets.cli.core import find_cases, main
from cmrqc_widgets.serve.auth import is_hashed, load_users, verify_password
from cmrqc_widgets.store import QCStore


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``cmrqc argv`` and return (exit status, stdout, stderr)."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_sentence(err: str, *words: str) -> None:
    """stderr is one line ``cmrqc: <sentence>.`` mentioning ``words``."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("cmrqc: ") and lines[0].endswith(".")
    for word in words:
        assert word in lines[0]


@pytest.fixture
def cohort(tmp_path: Path) -> Path:
    """A folder of three 4dsegment patients and one folder without a case."""
    folder = tmp_path / "data"
    for name in ("p01", "p02", "p03"):
        write_case(folder / name)
    (folder / "notes").mkdir()
    (folder / "notes" / "readme.txt").write_text("not a case")
    return folder


@pytest.fixture(autouse=True)
def _no_ambient_reviewer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JUPYTERHUB_USER", raising=False)
    monkeypatch.delenv("CMRQC_USER", raising=False)
    monkeypatch.delenv("CMRQC_ROOT", raising=False)


# --- demo ---------------------------------------------------------------------------------------


def test_demo_writes_the_cohort_and_prints_the_dataset_path(tmp_path, capsys) -> None:
    """`cmrqc demo` writes patients x 4 files and prints only the dataset path on stdout."""
    code, out, err = run(capsys, "demo", "--root", str(tmp_path), "--user", "alice", "--patients", "3")
    assert code == 0
    path = Path(out.strip())
    assert path == (tmp_path / "users" / "alice" / "demo.json").resolve()
    assert len(json.loads(path.read_text())) == 3
    assert len(list((tmp_path / "demo_cohort").glob("demo*/*.nii.gz"))) == 12
    assert "demo003" in err


def test_demo_is_idempotent(tmp_path, capsys) -> None:
    """A second `cmrqc demo` keeps the reviewer's decisions."""
    run(capsys, "demo", "--root", str(tmp_path), "--user", "alice", "--patients", "1")
    with QCStore(tmp_path, "alice").open("demo.json") as dataset:
        dataset.save(dataset.patients[0], "ED", "accept", "fine")
    code, _, _ = run(capsys, "demo", "--root", str(tmp_path), "--user", "alice", "--patients", "1")
    assert code == 0
    assert QCStore(tmp_path, "alice").open("demo.json").get(dataset.patients[0], "ED").decision == "accept"


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--patients", "0", "at least 1"),
        ("--patients", "ten", "not a whole number"),
        ("--seed", "-1", "at least 0"),
    ],
)
def test_demo_rejects_bad_numbers(tmp_path, capsys, option: str, value: str, expected: str) -> None:
    """--patients below 1 or a negative --seed are usage errors (exit 2); nothing is written."""
    code, _, err = run(capsys, "demo", "--root", str(tmp_path), option, value)
    assert code == 2
    assert expected in err
    assert not (tmp_path / "demo_cohort").exists()


# --- dataset create / list ----------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["4dsegment", "ukbb", "acdc"])
@pytest.mark.parametrize("given", [False, True])
def test_dataset_create_over_each_layout(tmp_path, capsys, layout: str, given: bool) -> None:
    """A folder of cases of any preset (detected or given) becomes a dataset of absolute paths."""
    folder = tmp_path / "data"
    patients = [write_case(folder / f"patient{i:03d}", layout) for i in (2, 1)]
    extra = ["--layout", layout] if given else []
    code, out, _ = run(
        capsys,
        "dataset",
        "create",
        "cohort",
        str(folder),
        "--root",
        str(tmp_path / "root"),
        "--user",
        "bob",
        *extra,
    )
    assert code == 0
    path = tmp_path / "root" / "users" / "bob" / "cohort.json"
    data = json.loads(path.read_text())
    assert list(data) == sorted(str(p.resolve()) for p in patients)
    assert all(v == {"ED_Comments": "", "ES_Comments": ""} for v in data.values())
    assert "2 cases" in out


def test_dataset_create_reports_skipped_folders(tmp_path, cohort, capsys) -> None:
    """Sub-folders without a case are listed as skipped; the cases are kept."""
    code, out, _ = run(
        capsys, "dataset", "create", "c.json", str(cohort), "--root", str(tmp_path), "--user", "bob"
    )
    assert code == 0
    assert "3 cases" in out
    assert "Skipped 1 folder" in out
    assert str(cohort / "notes") in out


def test_dataset_create_accepts_case_folders_themselves_without_duplicates(tmp_path, cohort, capsys) -> None:
    """A FOLDER that is itself a case is added as is; a case named twice is listed once, in order."""
    code, _, _ = run(
        capsys,
        "dataset", "create", "c", str(cohort / "p03"), str(cohort), str(cohort / "p01"),
        "--root", str(tmp_path), "--user", "bob",
    )  # fmt: skip
    assert code == 0
    data = json.loads((tmp_path / "users" / "bob" / "c.json").read_text())
    assert [Path(p).name for p in data] == ["p03", "p01", "p02"]


def test_dataset_create_with_wrong_layout_finds_nothing(tmp_path, cohort, capsys) -> None:
    """--layout ukbb over 4dsegment cases finds no case: exit 1 and no file written."""
    code, _, err = run(
        capsys,
        "dataset",
        "create",
        "c",
        str(cohort),
        "--layout",
        "ukbb",
        "--root",
        str(tmp_path),
        "--user",
        "bob",
    )
    assert code == 1
    assert_one_sentence(err, "No ukbb cases found")
    assert not (tmp_path / "users" / "bob" / "c.json").exists()


def test_dataset_create_refuses_to_overwrite(tmp_path, cohort, capsys) -> None:
    """An existing dataset is never replaced: exit 1, bytes unchanged."""
    args = ("dataset", "create", "c", str(cohort), "--root", str(tmp_path), "--user", "bob")
    assert run(capsys, *args)[0] == 0
    path = tmp_path / "users" / "bob" / "c.json"
    path.write_text(path.read_text().replace('"ED_Comments": ""', '"ED_Comments": "accept:ok"', 1))
    before = path.read_bytes()
    code, _, err = run(capsys, *args)
    assert code == 1
    assert_one_sentence(err, "already exists", str(path))
    assert path.read_bytes() == before


def test_dataset_create_missing_folder(tmp_path, capsys) -> None:
    """A FOLDER that does not exist: exit 1, one sentence naming it."""
    code, _, err = run(capsys, "dataset", "create", "c", str(tmp_path / "nope"), "--root", str(tmp_path))
    assert code == 1
    assert_one_sentence(err, str(tmp_path / "nope"), "does not exist")


def test_find_cases_reports_an_empty_folder_as_a_whole(tmp_path) -> None:
    """A folder with no case anywhere is one skipped entry, not one per sub-folder."""
    (tmp_path / "empty" / "a").mkdir(parents=True)
    (tmp_path / "empty" / "b").mkdir()
    cases, skipped = find_cases([tmp_path / "empty"])
    assert cases == []
    assert skipped == [(tmp_path / "empty").resolve()]


def test_dataset_list(tmp_path, cohort, capsys) -> None:
    """`dataset list` prints the reviewer's dataset names, sorted; none -> a note on stderr."""
    code, out, err = run(capsys, "dataset", "list", "--root", str(tmp_path), "--user", "bob")
    assert (code, out) == (0, "")
    assert "No dataset files" in err
    for name in ("zeta", "alpha"):
        run(capsys, "dataset", "create", name, str(cohort), "--root", str(tmp_path), "--user", "bob")
    code, out, _ = run(capsys, "dataset", "list", "--root", str(tmp_path), "--user", "bob")
    assert out.split() == ["alpha.json", "zeta.json"]


def test_root_and_user_default_from_the_environment(tmp_path, cohort, capsys, monkeypatch) -> None:
    """Without --root/--user, CMRQC_ROOT and JUPYTERHUB_USER (before CMRQC_USER) are used."""
    monkeypatch.setenv("CMRQC_ROOT", str(tmp_path / "envroot"))
    monkeypatch.setenv("CMRQC_USER", "carol")
    monkeypatch.setenv("JUPYTERHUB_USER", "dave")
    assert run(capsys, "dataset", "create", "c", str(cohort))[0] == 0
    assert (tmp_path / "envroot" / "users" / "dave" / "c.json").is_file()


# --- users --------------------------------------------------------------------------------------


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_user_add_from_stdin_stores_only_a_hash(tmp_path, capsys, monkeypatch) -> None:
    """A password piped on stdin is stored hashed; users.json never contains the plaintext."""
    monkeypatch.setattr(sys, "stdin", io.StringIO("s3cret-Pa55\n"))
    code, out, _ = run(capsys, "user", "add", "alice", "--root", str(tmp_path))
    assert code == 0
    assert "alice" in out
    text = (tmp_path / "users.json").read_text()
    assert "s3cret-Pa55" not in text
    stored = load_users(tmp_path)["alice"]
    assert is_hashed(stored)
    assert verify_password("s3cret-Pa55", stored)
    assert (tmp_path / "users" / "alice").is_dir()


def test_user_add_prompts_twice_on_a_terminal(tmp_path, capsys, monkeypatch) -> None:
    """On a TTY the password is asked twice with getpass; equal answers are stored."""
    prompts: list[str] = []
    monkeypatch.setattr(sys, "stdin", _Tty())
    monkeypatch.setattr(cli.getpass, "getpass", lambda prompt: prompts.append(prompt) or "pw-1234-long")
    code, _, _ = run(capsys, "user", "add", "bob", "--root", str(tmp_path))
    assert code == 0
    assert len(prompts) == 2
    assert verify_password("pw-1234-long", load_users(tmp_path)["bob"])


def test_user_add_mismatch_stores_nothing(tmp_path, capsys, monkeypatch) -> None:
    """Two different answers at the prompt: exit 1, no users.json written."""
    answers = iter(["one-password", "another-password"])
    monkeypatch.setattr(sys, "stdin", _Tty())
    monkeypatch.setattr(cli.getpass, "getpass", lambda prompt: next(answers))
    code, _, err = run(capsys, "user", "add", "bob", "--root", str(tmp_path))
    assert code == 1
    assert_one_sentence(err, "differ")
    assert not (tmp_path / "users.json").exists()


def test_user_add_empty_password_refused(tmp_path, capsys, monkeypatch) -> None:
    """An empty line on stdin is refused: exit 1."""
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n"))
    code, _, err = run(capsys, "user", "add", "bob", "--root", str(tmp_path))
    assert code == 1
    assert_one_sentence(err, "empty")


def test_user_migrate_hashes_a_legacy_file(tmp_path, capsys) -> None:
    """`user migrate` hashes a plaintext users.json in place; a second run has nothing to do."""
    (tmp_path / "users.json").write_text(json.dumps({"alice": "password", "bob": "hunter2"}))
    code, out, _ = run(capsys, "user", "migrate", "--root", str(tmp_path))
    assert code == 0
    assert "Hashed 2 plaintext passwords" in out
    text = (tmp_path / "users.json").read_text()
    assert "hunter2" not in text
    assert verify_password("hunter2", load_users(tmp_path)["bob"])
    code, out, _ = run(capsys, "user", "migrate", "--root", str(tmp_path))
    assert code == 0
    assert "nothing to migrate" in out


def test_user_add_on_a_legacy_file_asks_for_migration(tmp_path, capsys, monkeypatch) -> None:
    """Adding to a plaintext users.json fails with one sentence pointing at `cmrqc user migrate`."""
    (tmp_path / "users.json").write_text(json.dumps({"alice": "password"}))
    monkeypatch.setattr(sys, "stdin", io.StringIO("pw-long-enough\n"))
    code, _, err = run(capsys, "user", "add", "bob", "--root", str(tmp_path))
    assert code == 1
    assert_one_sentence(err, "cmrqc user migrate")


def test_user_list(tmp_path, capsys, monkeypatch) -> None:
    """`user list` prints reviewer names, never hashes."""
    monkeypatch.setattr(sys, "stdin", io.StringIO("pw-pw-pw-pw\n"))
    run(capsys, "user", "add", "alice", "--root", str(tmp_path))
    code, out, _ = run(capsys, "user", "list", "--root", str(tmp_path))
    assert (code, out) == (0, "alice\n")


# --- stats and export ---------------------------------------------------------------------------


@pytest.fixture
def decided(tmp_path: Path, cohort: Path, capsys) -> QCStore:
    """Dataset c.json of bob with three patients: ED accept, ED reject + ES finetune, nothing."""
    run(capsys, "dataset", "create", "c", str(cohort), "--root", str(tmp_path), "--user", "bob")
    store = QCStore(tmp_path, "bob")
    dataset = store.open("c.json")
    p1, p2, _ = dataset.patients
    dataset.save(p1, "ED", "accept", "good")
    dataset.save(p2, "ED", "reject", "leak, into atrium")
    dataset.save(p2, "ES", "finetune")
    dataset.close()
    return store


def test_stats_prints_counts_and_percentages(tmp_path, decided, capsys) -> None:
    """`stats` shows per-phase and overall counts and percentages, including no decision."""
    code, out, _ = run(capsys, "stats", "c.json", "--root", str(tmp_path), "--user", "bob")
    assert code == 0
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:]}
    assert "3 patients" in out.splitlines()[0]
    assert rows["accept"] == ["accept", "1", "33.3", "%", "0", "0.0", "%", "1", "16.7", "%"]
    assert rows["finetune"][4:7] == ["1", "33.3", "%"]
    assert rows["none"] == ["none", "1", "33.3", "%", "2", "66.7", "%", "3", "50.0", "%"]
    assert rows["decided"] == ["decided", "2", "1", "3"]


def test_export_csv_to_stdout(tmp_path, decided, capsys) -> None:
    """`export --format csv` writes one row per patient and phase to stdout."""
    code, out, _ = run(capsys, "export", "c", "--format", "csv", "--root", str(tmp_path), "--user", "bob")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 6
    assert rows[2]["decision"] == "reject"
    assert rows[2]["comment"] == "leak, into atrium"
    assert rows[-1]["decision"] == "none"


def test_export_json_to_a_file(tmp_path, decided, capsys) -> None:
    """`export --format json --out FILE` writes parseable JSON and nothing on stdout."""
    target = tmp_path / "out.json"
    code, out, _ = run(
        capsys,
        "export",
        "c",
        "--format",
        "json",
        "--out",
        str(target),
        "--root",
        str(tmp_path),
        "--user",
        "bob",
    )
    assert (code, out) == (0, "")
    rows = json.loads(target.read_text())
    assert [r["decision"] for r in rows] == ["accept", "none", "reject", "finetune", "none", "none"]


def test_missing_dataset_exits_1(tmp_path, capsys) -> None:
    """`stats` / `export` of a dataset that does not exist: exit 1, one sentence naming the file."""
    for command in ("stats", "export"):
        code, out, err = run(capsys, command, "nope", "--root", str(tmp_path), "--user", "bob")
        assert (code, out) == (1, "")
        assert_one_sentence(err, "nope.json", "does not exist")


def test_corrupt_dataset_exits_1(tmp_path, capsys) -> None:
    """A corrupt dataset file gives exit 1 and stays untouched."""
    folder = tmp_path / "users" / "bob"
    folder.mkdir(parents=True)
    (folder / "bad.json").write_text('{"a": {"ED_Comments": ')
    code, _, err = run(capsys, "stats", "bad", "--root", str(tmp_path), "--user", "bob")
    assert code == 1
    assert "bad.json" in err
    assert (folder / "bad.json").read_text() == '{"a": {"ED_Comments": '


# --- errors, help, registration -----------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["stats", "x", "--user", "../alice"],
        ["stats", "../../etc/passwd", "--user", "bob"],
        ["export", "/etc/passwd.json", "--user", "bob"],
        ["dataset", "list", "--user", "bob/../../x"],
        ["dataset", "create", "../escape", "."],
        ["demo", "--user", ".."],
        ["user", "add", "../evil"],
    ],
)
def test_hostile_names_exit_1_with_one_sentence(tmp_path, capsys, monkeypatch, argv) -> None:
    """Names that would leave the data root are refused: exit 1, one sentence, nothing written."""
    monkeypatch.setattr(sys, "stdin", io.StringIO("pw-long-enough\n"))
    code, _, err = run(capsys, *argv, "--root", str(tmp_path))
    assert code == 1
    assert_one_sentence(err, "not allowed")
    assert not (tmp_path / "users.json").exists()
    assert not any(p.suffix == ".json" for p in tmp_path.rglob("*"))


def test_unreadable_root_is_one_sentence(tmp_path, capsys) -> None:
    """An OSError (a data root that is a file) is reported as one sentence, exit 1."""
    root = tmp_path / "file"
    root.write_text("x")
    code, _, err = run(capsys, "demo", "--root", str(root), "--user", "bob", "--patients", "1")
    assert code == 1
    assert_one_sentence(err, str(root))


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], "required"),
        (["frobnicate"], "invalid choice"),
        (["export", "c", "--format", "xml"], "invalid choice"),
    ],
)
def test_usage_errors_exit_2(capsys, argv, expected) -> None:
    """Missing or unknown commands and bad options are usage errors (exit 2)."""
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert expected in err


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["demo"],
        ["dataset"],
        ["dataset", "create"],
        ["dataset", "list"],
        ["user"],
        ["user", "add"],
        ["user", "migrate"],
        ["user", "list"],
        ["stats"],
        ["export"],
    ],
)
def test_help_everywhere(capsys, argv) -> None:
    """Every command and subcommand has --help (exit 0) with a one-line description."""
    code, out, _ = run(capsys, *argv, "--help")
    assert code == 0
    assert out.startswith("usage: cmrqc")
    description = out.split("\n\n")[1]
    assert "\n" not in description.strip() or not argv


def test_registered_commands_are_added(capsys, monkeypatch) -> None:
    """Entries of REGISTRATIONS add their subcommands; their func runs like ours."""
    module = types.ModuleType("fake_cmrqc_plugin")

    def register(subparsers) -> None:
        parser = subparsers.add_parser("hello", help="say hello")
        parser.add_argument("--name", default="world")
        parser.set_defaults(func=lambda args: print(f"hello {args.name}") or 0)

    module.register = register
    monkeypatch.setitem(sys.modules, "fake_cmrqc_plugin", module)
    monkeypatch.setattr(cli, "REGISTRATIONS", ("fake_cmrqc_plugin:register",))
    assert run(capsys, "hello", "--name", "reviewer") == (0, "hello reviewer\n", "")


def test_a_broken_registration_is_reported_not_hidden(tmp_path, capsys, monkeypatch) -> None:
    """A registration that fails to import is named on stderr; the core commands still work."""
    monkeypatch.setattr(cli, "REGISTRATIONS", ("cmrqc_widgets.no_such_module:register",))
    code, _, err = run(capsys, "dataset", "list", "--root", str(tmp_path), "--user", "bob")
    assert code == 0
    assert "cmrqc_widgets.no_such_module" in err
    assert "unavailable" in err


def test_console_script_runs() -> None:
    """The installed `cmrqc` console script prints its help."""
    exe = shutil.which("cmrqc")
    argv = [exe, "--help"] if exe else [sys.executable, "-m", "cmrqc_widgets.cli", "--help"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "dataset" in result.stdout
    assert "usage: cmrqc" in result.stdout
