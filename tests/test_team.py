"""Team review: kappa against textbook examples, assignment, agreement, and the CLI commands."""

from __future__ import annotations

import argparse
import json

import pytest
from synthetic import write_case

from cmrqc_widgets.cli.team import register
from cmrqc_widgets.demo import DEMO_BROKEN, make_demo_cohort
from cmrqc_widgets.errors import CmrqcError, DatasetError
from cmrqc_widgets.qc.cohort import read_metrics
from cmrqc_widgets.qc.team import (
    agreement,
    assign,
    cohen_kappa,
    confusion_matrix,
    disagreements_csv,
    fleiss_kappa,
    parse_fraction,
    plot_confusion,
)
from cmrqc_widgets.store import QCStore

# Fleiss (1971) as worked on Wikipedia ("Fleiss' kappa"): 10 subjects, 14 raters, 5 categories.
FLEISS_WIKIPEDIA = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


def run(argv: list[str]) -> int:
    """Parse ``argv`` with a parser holding only our subcommands, and run the handler."""
    parser = argparse.ArgumentParser(prog="cmrqc")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cohen_kappa_textbook_2x2():
    """50 items, counts yes/yes 20, yes/no 5, no/yes 10, no/no 15: po 0.70, pe 0.50, kappa 0.40."""
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert confusion_matrix(a, b, ["yes", "no"]).tolist() == [[20, 5], [10, 15]]
    assert cohen_kappa(a, b) == pytest.approx(0.40)


def test_cohen_kappa_edge_cases():
    """Perfect agreement gives 1; all ratings one category is undefined (NaN); bad input is refused."""
    assert cohen_kappa(["a", "b", "a"], ["a", "b", "a"]) == pytest.approx(1.0)
    assert cohen_kappa(["a", "a"], ["a", "a"]) != cohen_kappa(["a", "a"], ["a", "a"])  # NaN
    with pytest.raises(ValueError, match="at least one case"):
        cohen_kappa([], [])
    with pytest.raises(ValueError, match="same cases"):
        cohen_kappa(["a"], ["a", "b"])
    with pytest.raises(ValueError, match="'c' is not one of"):
        confusion_matrix(["a"], ["c"], ["a", "b"])


def test_fleiss_kappa_wikipedia_example():
    """The worked example (P-bar 0.378, Pe 0.213) gives kappa 0.210."""
    assert fleiss_kappa(FLEISS_WIKIPEDIA) == pytest.approx(0.210, abs=0.0005)


def test_fleiss_kappa_refuses_uneven_rows():
    """Every subject must have the same number of raters."""
    with pytest.raises(ValueError, match="same number of raters"):
        fleiss_kappa([[2, 1], [1, 1]])


def test_parse_fraction():
    """'10%', '0.1' and 0.25 are fractions; words and values above 100 % are refused."""
    assert parse_fraction("10%") == pytest.approx(0.1)
    assert parse_fraction("0.1") == pytest.approx(0.1)
    assert parse_fraction(0.25) == 0.25
    with pytest.raises(ValueError, match="not a fraction"):
        parse_fraction("ten")
    with pytest.raises(ValueError, match="outside 0-100 %"):
        parse_fraction("150%")


@pytest.fixture
def cohort20(tmp_path):
    """A data root where 'lead' owns cohort.json with 20 patients."""
    patients = [f"/data/p{i:02d}" for i in range(20)]
    QCStore(tmp_path, "lead").create("cohort.json", patients)
    return tmp_path, patients


def test_assign_split_and_overlap(cohort20):
    """10 % of 20 patients go to everyone; the other 18 are dealt out, 6 each, in file order."""
    root, patients = cohort20
    result = assign(root, "cohort.json", ["alice", "bob", "carol"], overlap="10%", owner="lead")
    assert result.dataset == "cohort.json"
    assert len(result.overlap) == 2
    own = {}
    for user in ("alice", "bob", "carol"):
        got = QCStore(root, user).open("cohort.json").patients
        assert got == result.patients[user]
        assert got == sorted(got)  # source order
        assert set(result.overlap) <= set(got)
        own[user] = set(got) - set(result.overlap)
        assert len(own[user]) == 6
    assert set.union(*own.values(), set(result.overlap)) == set(patients)
    assert not own["alice"] & own["bob"]


def test_assign_is_deterministic_by_seed(cohort20, tmp_path_factory):
    """The same seed gives the same split; another seed another one."""
    root, patients = cohort20
    first = assign(root, "cohort.json", ["alice", "bob"], seed=3, owner="lead")
    other_root = tmp_path_factory.mktemp("other")
    QCStore(other_root, "lead").create("cohort.json", patients)
    again = assign(other_root, "cohort.json", ["alice", "bob"], seed=3, owner="lead")
    assert again.patients == first.patients
    different = assign(other_root, "cohort.json", ["alice", "bob"], seed=4, owner="lead", name="b.json")
    assert different.patients != first.patients


def test_assign_never_overwrites(cohort20):
    """If one reviewer already has the file, nothing is written for anyone and the error names it."""
    root, _ = cohort20
    QCStore(root, "bob").create("cohort.json", ["/data/mine"])
    with pytest.raises(DatasetError, match=r"Nothing was assigned: .*users/bob/cohort\.json already exists"):
        assign(root, "cohort.json", ["alice", "bob", "carol"], owner="lead")
    assert QCStore(root, "alice").datasets() == []
    assert QCStore(root, "carol").datasets() == []
    assert QCStore(root, "bob").open("cohort.json").patients == ["/data/mine"]


def test_assign_from_a_file_and_bad_users(cohort20, tmp_path):
    """A dataset path works as source; a reviewer listed twice or a missing dataset is an error."""
    root, patients = cohort20
    path = QCStore(root, "lead").path("cohort.json")
    result = assign(root, path, ["alice", "bob"], overlap=0)
    assert result.overlap == []
    assert sorted(result.patients["alice"] + result.patients["bob"]) == patients
    with pytest.raises(CmrqcError, match="bob is listed more than once"):
        assign(root, path, ["bob", "bob"])
    with pytest.raises(DatasetError, match=r"nothing\.json does not exist"):
        assign(root, "nothing.json", ["x"], owner="lead")


def save_all(root, user, decisions, phase="ED"):
    dataset = QCStore(root, user).open("shared.json")
    for patient, decision in decisions.items():
        if decision:
            dataset.save(patient, phase, decision, f"{user} says {decision}")
    dataset.close()


def two_raters(root):
    """alice and bob on 10 shared cases (hand-computed: po 0.7, pe 0.39, kappa 0.508) + extras."""
    shared = [f"/d/p{i}" for i in range(10)]
    QCStore(root, "alice").create("shared.json", [*shared, "/d/late", "/d/only-alice"])
    QCStore(root, "bob").create("shared.json", [*shared, "/d/late"])
    a = ["accept"] * 5 + ["reject"] * 3 + ["finetune"] * 2
    b = ["accept"] * 4 + ["reject"] * 3 + ["accept", "finetune", "reject"]
    save_all(root, "alice", dict(zip(shared, a, strict=True)) | {"/d/late": "accept"})
    save_all(root, "bob", dict(zip(shared, b, strict=True)))
    return shared


def test_agreement_two_raters(tmp_path):
    """Percent agreement, Cohen's kappa, confusion matrix, disagreements and cases not rated by all."""
    two_raters(tmp_path)
    result = agreement(tmp_path, "shared.json", ["alice", "bob"])
    ed = result.phases["ED"]
    assert ed.n == 10
    assert ed.percent_agreement == pytest.approx(70.0)
    assert ed.kappa == pytest.approx((0.7 - 0.39) / 0.61, abs=1e-4)
    assert ed.kappa_kind == "cohen"
    assert ed.confusion == [[4, 1, 0, 0], [1, 2, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]]
    assert [d["patient"] for d in ed.disagreements] == ["/d/p4", "/d/p7", "/d/p9"]
    assert ed.disagreements[0]["decisions"] == {"alice": "accept", "bob": "reject"}
    assert ed.not_rated_by_all == [{"patient": "/d/late", "missing": ["bob"]}]
    assert result.not_shared == 1  # /d/only-alice
    es = result.phases["ES"]
    assert es.n == 0 and es.kappa is None and es.percent_agreement is None
    assert len(es.not_rated_by_all) == 11


def test_agreement_three_raters_uses_fleiss(tmp_path):
    """With three raters kappa is Fleiss' (hand-computed 0.268 on four cases)."""
    cases = ["/d/1", "/d/2", "/d/3", "/d/4"]
    ratings = {
        "alice": ["accept", "accept", "reject", "finetune"],
        "bob": ["accept", "accept", "reject", "accept"],
        "carol": ["accept", "reject", "reject", "reject"],
    }
    for user, decisions in ratings.items():
        QCStore(tmp_path, user).create("shared.json", cases)
        save_all(tmp_path, user, dict(zip(cases, decisions, strict=True)))
    ed = agreement(tmp_path, "shared.json", list(ratings)).phases["ED"]
    # P-bar = (1 + 1/3 + 1 + 0) / 4, Pe = 0.5^2 + (5/12)^2 + (1/12)^2
    assert ed.kappa == pytest.approx(0.2683, abs=1e-4)
    assert ed.kappa_kind == "fleiss"
    assert ed.percent_agreement == pytest.approx(50.0)
    assert ed.confusion is None
    counts = [[3, 0, 0, 0], [2, 1, 0, 0], [0, 3, 0, 0], [1, 1, 1, 0]]
    assert fleiss_kappa(counts) == pytest.approx(ed.kappa, abs=1e-4)


def test_agreement_needs_two_raters_and_their_files(tmp_path):
    """One rater, or a rater without the file, is a clear error."""
    two_raters(tmp_path)
    with pytest.raises(CmrqcError, match="at least two reviewers"):
        agreement(tmp_path, "shared.json", ["alice"])
    with pytest.raises(DatasetError, match=r"users/carol/shared\.json does not exist"):
        agreement(tmp_path, "shared.json", ["alice", "carol"])


def test_disagreements_csv_and_heatmap(tmp_path):
    """The CSV lists each disagreement with both decisions and comments; the heatmap is titled."""
    two_raters(tmp_path)
    result = agreement(tmp_path, "shared.json", ["alice", "bob"])
    text = disagreements_csv(result, tmp_path / "dis.csv")
    lines = text.splitlines()
    assert lines[0] == "phase,patient,alice,alice_comment,bob,bob_comment"
    assert lines[1] == "ED,/d/p4,accept,alice says accept,reject,bob says reject"
    assert len(lines) == 4
    assert (tmp_path / "dis.csv").read_text() == text
    ax = plot_confusion(result, "ed")
    assert ax.get_title().startswith("ED: Cohen's kappa 0.51, agreement 70% (n=10)")
    assert ax.get_xlabel() == "bob" and ax.get_ylabel() == "alice"
    assert len(ax.texts) == 16


def test_cli_assign_and_agreement(cohort20, capsys):
    """`assign` accepts 10% and a dataset name; `agreement --json` prints n, percent and kappa per phase."""
    root, _ = cohort20
    rc = run(["assign", "cohort", "--users", "alice", "bob", "--overlap", "10%", "--root", str(root),
              "--user", "lead", "--name", "review"])
    assert rc == 0
    assert "Assigned 20 patients as review.json to 2 reviewers, 2 shared by all" in capsys.readouterr().out
    overlap = QCStore(root, "alice").open("review.json").patients
    shared = [p for p in overlap if p in QCStore(root, "bob").open("review.json").patients]
    for user in ("alice", "bob"):
        dataset = QCStore(root, user).open("review.json")
        for patient in shared:
            dataset.save(patient, "ED", "accept")
        dataset.close()
    out_csv = root / "dis.csv"
    assert run(["agreement", "review.json", "--users", "alice", "bob", "--root", str(root), "--json",
                "--disagreements", str(out_csv)]) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert data["phases"]["ED"]["n"] == 2
    assert data["phases"]["ED"]["percent_agreement"] == 100.0
    assert data["phases"]["ED"]["kappa"] is None  # all 'accept': kappa undefined
    assert set(data["phases"]["ES"]) >= {"n", "percent_agreement", "kappa"}
    assert "Wrote 0 disagreements" in captured.err
    assert run(["agreement", "review", "--users", "alice", "bob", "--root", str(root)]) == 0
    assert "ED: n=2, agreement 100.0%, Cohen's kappa undefined" in capsys.readouterr().out


def test_cli_assign_refusal_and_bad_overlap(cohort20, capsys):
    """An existing reviewer file raises DatasetError; a bad --overlap is a usage error."""
    root, _ = cohort20
    with pytest.raises(DatasetError, match="already exist"):
        run(["assign", "cohort.json", "--users", "lead", "--root", str(root), "--user", "lead"])
    with pytest.raises(SystemExit):
        run(["assign", "cohort.json", "--users", "a", "--overlap", "lots"])
    assert "not a fraction" in capsys.readouterr().err


def test_cli_metrics(tmp_path, capsys):
    """`metrics` on a dataset name writes the CSV, names the flagged patients, and resumes."""
    dataset = make_demo_cohort(tmp_path, "alice", n_patients=3, shape=(64, 64, 8))
    out = tmp_path / "m.csv"
    argv = ["metrics", "demo", "--out", str(out), "--root", str(tmp_path), "--user", "alice", "--quiet"]
    assert run(argv) == 0
    text = capsys.readouterr().out
    assert "Measured 3 patients" in text and "(0 were already there); 1 of 3 flagged." in text
    assert "Most suspicious first: demo003" in text  # the demo's gap case (DEMO_BROKEN)
    assert "demo003" in DEMO_BROKEN
    assert len(read_metrics(out)) == 6
    assert run(argv) == 0
    assert "Measured 0 patients" in capsys.readouterr().out
    assert dataset.exists()


def test_cli_metrics_unknown_source(tmp_path):
    """A source that is neither a path nor a dataset name is one clear error."""
    argv = ["metrics", "ghost", "--root", str(tmp_path), "--user", "alice", "--out", str(tmp_path / "o.csv")]
    with pytest.raises(DatasetError, match="is not a file or folder, nor a dataset of alice"):
        run(argv)


def test_cli_metrics_folder_with_workers(tmp_path, capsys):
    """`metrics FOLDER --workers 2` measures every patient folder."""
    for name in ("p1", "p2"):
        write_case(tmp_path / "cohort" / name)
    rc = run(["metrics", str(tmp_path / "cohort"), "--out", str(tmp_path / "m.csv"), "--workers", "2",
              "--quiet"])
    assert rc == 0
    assert "Measured 2 patients" in capsys.readouterr().out
