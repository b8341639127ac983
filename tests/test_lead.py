"""The lead's view, pure parts: progress, agreement, disagreement queue, consensus dataset, report."""

from __future__ import annotations

import os
import statistics
from datetime import datetime, timedelta, timezone

import pytest
from synthetic import REVIEWER, pdf_facts

from cmrqc_widgets.cli.core import build_parser
from cmrqc_widgets.errors import CmrqcError
from cmrqc_widgets.qc.cohort import cohort_metrics, read_metrics
from cmrqc_widgets.qc.consensus import adjudicate, consensus_name, open_consensus
from cmrqc_widgets.qc.lead import ago, read_team
from cmrqc_widgets.qc.study_report import (
    METRIC_COLUMNS,
    read_report_csv,
    report_columns,
    report_rows,
    write_report_csv,
)
from cmrqc_widgets.qc.team import agreement, assign
from cmrqc_widgets.store import QCStore, read_dataset_file
from cmrqc_widgets.store.fileformat import parse_decision
from cmrqc_widgets.store.snapshot import SnapshotCache, read_snapshot

TEAM = ("ann", "ben", "cat")


def cli(argv: list[str]) -> int:
    """Run ``cmrqc argv`` in-process and return its exit status."""
    args = build_parser().parse_args(argv)
    return args.func(args)


@pytest.fixture
def team(root):
    """The demo cohort split between three reviewers, half of it shared; the lead is ``lee``."""
    assign(root, "demo.json", TEAM, overlap="50%", seed=1, owner=REVIEWER, name="study.json")
    return root


def decide(root, user, choices, phase="ED", seconds=None):
    """Save ``choices`` (patient index in the reviewer's file -> decision) for ``user``."""
    ds = QCStore(root, user).open("study.json")
    for i, decision in choices.items():
        ds.save(ds.patients[i], phase, decision, f"{user} on {i}", seconds=seconds)
    ds.close()
    return ds.patients


def shared(root):
    """The patients every reviewer has, in the first reviewer's order."""
    files = [list(read_dataset_file(QCStore(root, u).path("study.json"))) for u in TEAM]
    return [p for p in files[0] if all(p in f for f in files[1:])]


def test_progress_counts_decisions_per_day_and_median_seconds(team):
    """Progress is n of N case-phases decided, last active, decisions per day, median seconds per case."""
    patients = decide(team, "ann", {0: "accept", 1: "reject", 2: "finetune"}, seconds=None)
    ds = QCStore(team, "ann").open("study.json")
    for i, s in enumerate((10.0, 20.0, 40.0)):
        ds.save(patients[i], "ED", None if i == 2 else ds.get(patients[i], "ED").decision, seconds=s)
    ds.close()
    status = read_team(team, "study.json")
    p = status.progress["ann"]
    on_disk = read_dataset_file(QCStore(team, "ann").path("study.json"))
    decided = sum(
        bool(parse_decision(o[f]).decision) for o in on_disk.values() for f in ("ED_Comments", "ES_Comments")
    )
    assert (p.decided, p.assigned) == (decided, 2 * len(on_disk)) and decided == 2
    today = datetime.now(timezone.utc).date().isoformat()
    assert p.per_day == {today: 5}  # 3 decisions, then 2 saves that kept a decision
    assert p.median_seconds == statistics.median([10.0, 20.0, 40.0])
    assert p.summary() == f"2 of {2 * len(on_disk)} decided, last active just now"
    assert status.progress["ben"].summary().endswith("last active never")


def test_ago_reads_like_a_person():
    """Last activity reads "10 min ago", "3 h ago", "2 days ago"."""
    now = datetime(2026, 1, 2, 12, 0, tzinfo=timezone.utc)
    assert ago(now - timedelta(minutes=10), now) == "10 min ago"
    assert ago(now - timedelta(hours=3, minutes=5), now) == "3 h ago"
    assert ago(now - timedelta(days=2), now) == "2 days ago"


def test_agreement_pairs_and_queue_follow_the_files(team):
    """Overall agreement equals `cmrqc agreement`; pairs and the queue come from the files as they change."""
    both = shared(team)
    picks = {"ann": "accept", "ben": "accept", "cat": "reject"}
    for user, word in picks.items():
        ds = QCStore(team, user).open("study.json")
        ds.save(both[0], "ED", word, f"{user} says {word}")
        ds.save(both[1], "ED", "accept")
        ds.close()
    cache = SnapshotCache()
    status = read_team(team, "study.json", cache=cache)
    assert status.agreement.to_dict() == agreement(team, "study.json", TEAM).to_dict()
    assert [(q.patient, q.phase) for q in status.queue] == [(both[0], "ED")]
    assert {u: d.decision for u, d in status.queue[0].decisions.items()} == picks
    pair = {(p.a, p.b): p for p in status.pairs}
    assert pair[("ann", "ben")].percent_agreement == 100.0 and pair[("ann", "ben")].n == 2
    assert pair[("ann", "cat")].percent_agreement == 50.0
    with QCStore(team, "cat").open("study.json") as ds:
        ds.save(both[0], "ED", "accept")
    again = read_team(team, "study.json", cache=cache)
    assert again.queue == [] and again.agreement.phases["ED"].percent_agreement == 100.0


def test_consensus_dataset_records_who_when_and_what_it_settled(team):
    """An adjudication is a save in the lead's consensus file; its history names what it settled."""
    both = shared(team)
    for user, word in zip(TEAM, ("accept", "reject", "reject"), strict=True):
        with QCStore(team, user).open("study.json") as ds:
            ds.save(both[0], "ES", word, f"{user}: {word}")
    status = read_team(team, "study.json", lead="lee")
    item = status.queue[0]
    consensus = open_consensus(team, "lee", "study.json", status.patients)
    before = datetime.now(timezone.utc)
    adjudicate(consensus, item.patient, item.phase, "finetune", "edit the base", item.decisions, seconds=30)
    consensus.close()
    path = QCStore(team, "lee").path(consensus_name("study.json"))
    assert path.name == "study.consensus.json"
    assert read_dataset_file(path)[both[0]]["ES_Comments"] == "finetune:edit the base"
    (entry,) = QCStore(team, "lee").open("study.consensus.json").history(both[0])
    assert entry.user == "lee" and entry.new.decision == "finetune" and entry.seconds == 30
    assert datetime.fromisoformat(entry.time) >= before - timedelta(seconds=1)
    assert {u: (d.decision, d.comment) for u, d in entry.settles.items()} == {
        "ann": ("accept", "ann: accept"), "ben": ("reject", "ben: reject"), "cat": ("reject", "cat: reject")
    }  # fmt: skip
    settled = read_team(team, "study.json", lead="lee")
    assert settled.queue[0].settled and settled.queue[0].adjudication.lead == "lee"


def test_snapshot_reads_without_writing(team):
    """Reading a reviewer's files for the lead creates, changes and locks nothing in their folder."""
    ds = QCStore(team, "ann").open("study.json")
    ds.save(ds.patients[0], "ED", "reject", "x")  # in the journal; the file rewrite is pending
    folder = QCStore(team, "ann").folder
    ds._writer.take()  # keep the background rewrite from racing the listing below
    before = {e.name: (e.stat().st_size, e.stat().st_mtime_ns) for e in os.scandir(folder)}
    snap = read_snapshot(folder / "study.json")
    assert snap.decisions[ds.patients[0]]["ED"].decision == "reject"
    after = {e.name: (e.stat().st_size, e.stat().st_mtime_ns) for e in os.scandir(folder)}
    assert after == before
    ds.close()


@pytest.fixture
def judged(team, tmp_path):
    """Three reviewers who decided every shared case-phase, two disagreements adjudicated by ``lee``."""
    both = shared(team)
    words = ["accept", "reject", "finetune", "unclassified"]
    for k, user in enumerate(TEAM):
        ds = QCStore(team, user).open("study.json")
        for p in ds.patients:
            i = int(p[-3:])  # demo001 ... demo010: the same word for everyone who has it
            for phase in ("ED", "ES"):
                disagree = p in both[:2] and phase == "ED"
                ds.save(
                    p, phase, words[k] if disagree else words[i % 2], f"{user}, {phase} ={i}", seconds=5 + k
                )
        ds.close()
    status = read_team(team, "study.json", lead="lee")
    consensus = open_consensus(team, "lee", "study.json", status.patients)
    for item in status.queue[:2]:
        adjudicate(consensus, item.patient, item.phase, "reject", "lead: reject", item.decisions, seconds=12)
    consensus.close()
    metrics = tmp_path / "metrics.csv"
    cohort_metrics(QCStore(team, REVIEWER).path("demo.json"), metrics, progress=False)
    return team, metrics


def test_report_rows_match_the_files(judged, tmp_path):
    """Each report row holds what the files say: every reviewer, the consensus, the metrics, the seconds."""
    root, metrics = judged
    assert cli(["report", "study.json", "--root", str(root), "--lead", "lee", "--metrics", str(metrics),
                "--out", str(tmp_path / "r.csv"), "--html", str(tmp_path / "s.html"),
                "--pdf", str(tmp_path / "s.pdf")]) == 0  # fmt: skip
    rows = read_report_csv(tmp_path / "r.csv")
    assert list(rows[0]) == report_columns(TEAM)
    files = {u: read_dataset_file(QCStore(root, u).path("study.json")) for u in TEAM}
    lead_file = read_dataset_file(QCStore(root, "lee").path("study.consensus.json"))
    measured = {(r["patient"], r["phase"]): r for r in read_metrics(metrics)}
    files_of = [*((u, "study.json") for u in TEAM), ("lee", "study.consensus.json")]
    journals = [QCStore(root, u).open(name).history() for u, name in files_of]
    patients = set().union(*files.values())
    assert {(r["patient"], r["phase"]) for r in rows} == {(p, ph) for p in patients for ph in ("ED", "ES")}
    assert len(rows) == 2 * len(patients)
    seen_sources = set()
    for row in rows:
        p, field = row["patient"], f"{row['phase']}_Comments"
        mine = {u: parse_decision(f[p][field]) for u, f in files.items() if p in f}
        for u in TEAM:
            got = mine.get(u)
            want_comment = got.comment if got else ""
            assert row[u] == (got.decision or "" if got else "")
            assert row[f"{u}_comment"] == ("'" + want_comment if want_comment[:1] == "=" else want_comment)
        words = {d.decision for d in mine.values()}
        lead = parse_decision(lead_file.get(p, {}).get(field, ""))
        if lead.decision:
            assert row["consensus"] == lead.decision and row["consensus_comment"] == lead.comment
            assert (row["consensus_source"], row["adjudicated_by"]) == ("lead", "lee")
        elif len(words) == 1:
            assert row["consensus"] == next(iter(words))
            assert row["consensus_source"] == ("unanimous" if len(mine) > 1 else "single reviewer")
        else:
            assert (row["consensus"], row["consensus_source"]) == ("", "disputed")
        seen_sources.add(row["consensus_source"])
        assert row["agreement"] == ("" if len(mine) < 2 else "yes" if len(words) == 1 else "no")
        m = measured[(p, row["phase"])]
        for column in METRIC_COLUMNS:
            if m[column] is None:
                assert row[column] == ""
            elif column == "failed_checks":
                assert row[column] == m[column]
            else:
                assert float(row[column]) == pytest.approx(m[column])
        spent = sum(e.seconds or 0 for h in journals for e in h if (e.patient, e.phase) == (p, row["phase"]))
        assert float(row["seconds"]) == pytest.approx(spent)
    assert seen_sources >= {"lead", "unanimous", "single reviewer"}
    page = (tmp_path / "s.html").read_text()
    assert page.count('src="data:image/png;base64,') == 3 and "study.json" in page
    assert pdf_facts(tmp_path / "s.pdf") == (4, "QC summary: study.json")  # facts, pie, kappa matrix, EF/EDV


def test_report_in_python_and_excel_safety(judged):
    """A comment starting with "=" reaches the CSV as text; the file opens in Excel as UTF-8 (BOM)."""
    root, metrics = judged
    status = read_team(root, "study.json", lead="lee")
    rows = report_rows(status, read_metrics(metrics))
    assert any(r["ann_comment"].startswith("ann,") for r in rows)
    rows[0]["ann_comment"] = "=HYPERLINK(1)"
    text = write_report_csv(rows, status.reviewers)
    assert "'=HYPERLINK(1)" in text and ",=HYPERLINK" not in text


def test_report_bad_input_says_one_sentence(judged, tmp_path, capsys):
    """A reviewer without a file, or a corrupt one, is one sentence; the others are still reported."""
    root, _ = judged
    out = tmp_path / "r.csv"
    status = cli(["report", "study", "--root", str(root), "--lead", "lee", "--users", "ann", "ben", "zed",
                  "--no-measure", "--out", str(out), "--html", str(tmp_path / "s.html")])  # fmt: skip
    err = capsys.readouterr().err
    assert status == 1 and err.count("\n") == 1 and "zed is left out" in err and "does not exist" in err
    assert {"ann", "ben"} <= set(read_report_csv(out)[0]) and "zed" not in read_report_csv(out)[0]
    path = QCStore(root, "cat").path("study.json")
    path.write_text("{broken", encoding="utf-8")
    assert cli(["report", "study", "--root", str(root), "--lead", "lee", "--no-measure",
                "--out", str(out), "--html", str(tmp_path / "s.html")]) == 1  # fmt: skip
    assert "cat is left out: Dataset file" in capsys.readouterr().err
    assert path.read_text() == "{broken"
    with pytest.raises(CmrqcError, match=r"No reviewer has a dataset file named nothing\.json"):
        read_team(root, "nothing.json")


@pytest.mark.parametrize(("folder_mode", "file_mode"), [(0o700, 0o600), (0o750, 0o640)])
def test_files_are_as_readable_as_their_folder(tmp_path, folder_mode, file_mode):
    """A 0700 folder keeps its files 0600; a folder opened to the leads' group makes them group-readable."""
    store = QCStore(tmp_path, "ann")
    store.folder.mkdir(parents=True)
    os.chmod(store.folder, folder_mode)
    with store.create("study.json", ["/data/p1"]) as ds:
        ds.save("/data/p1", "ED", "accept", "fine")
    for path in (ds.path, ds.journal_path):
        assert os.stat(path).st_mode & 0o777 == file_mode, path.name


def test_the_leads_source_file_is_not_a_review(tmp_path, cohort):
    """`cmrqc assign` keeps the lead's file name: the lead's own source file is not counted as a reviewer."""
    import shutil

    (tmp_path / "users" / "lee").mkdir(parents=True)
    shutil.copy(cohort / "users" / REVIEWER / "demo.json", tmp_path / "users" / "lee" / "demo.json")
    assign(tmp_path, "demo.json", ["ann", "ben"], owner="lee")
    assert read_team(tmp_path, "demo.json", lead="lee").reviewers == ("ann", "ben")
    assert read_team(tmp_path, "demo.json").reviewers == ("ann", "ben", "lee")
