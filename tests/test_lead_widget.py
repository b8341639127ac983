"""The lead's screen, driven as the lead would: progress, kappa, queue, adjudication, report, assignment."""

from __future__ import annotations

import shutil

import pytest
from synthetic import REVIEWER, pdf_facts

from cmrqc_widgets.errors import CmrqcError
from cmrqc_widgets.qc.study_report import read_report_csv
from cmrqc_widgets.qc.team import agreement, assign
from cmrqc_widgets.serve.auth import add_user
from cmrqc_widgets.store import QCStore, read_dataset_file
from cmrqc_widgets.store.fileformat import parse_decision

TEAM = ("ann", "ben", "cat")


@pytest.fixture
def team(root):
    """Three reviewers sharing half of the demo cohort as study.json; ``lee`` is the lead."""
    for name in (*TEAM, "lee"):
        add_user(root, name, "team-pass-12345", lead=name == "lee")
    add_user(root, REVIEWER, "team-pass-12345")
    assign(root, "demo.json", TEAM, overlap="50%", seed=1, owner=REVIEWER, name="study.json")
    return root


def shared(root):
    """The patients every reviewer has, in the first reviewer's order."""
    files = [list(read_dataset_file(QCStore(root, u).path("study.json"))) for u in TEAM]
    return [p for p in files[0] if all(p in f for f in files[1:])]


def decide(root, user, phase, words):
    """``user`` decides the first shared patients, with a comment naming the decision."""
    with QCStore(root, user).open("study.json") as ds:
        for patient, word in zip(shared(root), words, strict=False):
            ds.save(patient, phase, word, f"{user} thinks {word}", seconds=7)


@pytest.fixture
def lead(team):
    """The lead's screen on study.json (no periodic re-read outside a kernel)."""
    from cmrqc_widgets import LeadWidget

    w = LeadWidget(root=team, user="lee", dataset="study.json")
    yield w
    w.close()


def counts(root, user):
    """(decided case-phases, all case-phases) in ``user``'s file on disk."""
    data = read_dataset_file(QCStore(root, user).path("study.json"))
    decided = sum(
        bool(parse_decision(o[k]).decision) for o in data.values() for k in ("ED_Comments", "ES_Comments")
    )
    return decided, 2 * len(data)


def test_a_reviewer_gets_one_sentence_and_reads_nothing(team, monkeypatch):
    """A reviewer (not a lead) or an unknown user opening the lead view gets one sentence; nothing is read."""
    from cmrqc_widgets import LeadWidget
    from cmrqc_widgets.store import snapshot

    def forbidden(*args, **kwargs):
        raise AssertionError("a reviewer's file was read")

    monkeypatch.setattr(snapshot, "read_snapshot", forbidden)
    monkeypatch.setattr(QCStore, "datasets", forbidden)
    for user in ("ann", "mallory"):
        w = LeadWidget(root=team, user=user)
        assert w.children == (w.banner,) and w.state.status is None
        assert f"{user} is not a lead" in w.banner.value and w.banner.value.count(".") == 2  # "users.json."
        w.close()


def test_a_corrupt_users_file_is_one_sentence(team):
    """An unreadable users.json shows one sentence naming it, and nothing else."""
    from cmrqc_widgets import LeadWidget

    (team / "users.json").write_text("{not json")
    w = LeadWidget(root=team, user="lee")
    assert w.children == (w.banner,) and "users.json cannot be read" in w.banner.value


def test_progress_and_kappa_follow_the_reviewers(team, lead):
    """After reviewers decide, Refresh shows each "n of N decided" and the kappa of `cmrqc agreement`."""
    for user in TEAM:
        n, total = counts(team, user)
        assert f"{n} of {total} decided, last active never" in lead.progress.value
    decide(team, "ann", "ED", ["accept", "accept", "reject"])
    decide(team, "ben", "ED", ["accept", "reject", "reject"])
    decide(team, "cat", "ED", ["accept", "accept"])
    lead.refresh_button.click()
    for user in TEAM:
        n, total = counts(team, user)
        assert f"{n} of {total} decided, last active just now" in lead.progress.value
    result = agreement(team, "study.json", TEAM).phases["ED"]
    expected = "undefined" if result.kappa is None else f"{result.kappa:.2f}"
    assert f"{expected} (Fleiss)" in lead.agreement.value
    assert len(lead.queue.options) == len(result.disagreements) > 0
    assert lead.heatmap.value[:8] == b"\x89PNG\r\n\x1a\n"


def test_adjudicating_a_disagreement_writes_the_consensus(team, lead):
    """Open a disagreement, see everyone side by side in the review screen, record the final decision."""
    decide(team, "ann", "ED", ["accept"])
    decide(team, "ben", "ED", ["reject"])
    decide(team, "cat", "ED", ["reject"])
    lead.refresh_button.click()
    lead.queue.value = 0
    lead.open_button.click()
    item = lead.state.current
    for user in TEAM:
        d = item.decisions[user]
        assert d.comment in lead.side_by_side.value and d.decision in lead.side_by_side.value
    assert (lead.viewer.state.patient, lead.viewer.state.phase) == (item.patient, item.phase)
    assert lead.viewer.state.case is not None  # the images of that case are on screen
    lead.final_decision.value = "finetune"
    lead.final_comment.value = "basal slice only"
    lead.record_button.click()
    on_disk = read_dataset_file(QCStore(team, "lee").path("study.consensus.json"))
    assert on_disk[item.patient]["ED_Comments"] == "finetune:basal slice only"
    (entry,) = QCStore(team, "lee").open("study.consensus.json").history(item.patient)
    assert entry.user == "lee" and {u: d.decision for u, d in entry.settles.items()} == {
        "ann": "accept", "ben": "reject", "cat": "reject"
    }  # fmt: skip
    assert lead.queue.options[0][0].endswith("✓ finetune")
    with pytest.raises(CmrqcError, match="Choose a final decision"):
        lead.state.record("delete-everything")


def test_report_button_writes_the_table_and_offers_downloads(team, lead):
    """The report button writes the CSV and summary in the lead's folder, and two download links."""
    decide(team, "ann", "ES", ["accept", "reject"])
    lead.report_button.click()
    folder = QCStore(team, "lee").folder
    rows = read_report_csv(folder / "study.report.csv")
    patients = set().union(*(read_dataset_file(QCStore(team, u).path("study.json")) for u in TEAM))
    assert len(rows) == 2 * len(patients)
    ann = read_dataset_file(QCStore(team, "ann").path("study.json"))
    for row in rows:
        if row["patient"] in ann:
            assert row["ann"] == (
                parse_decision(ann[row["patient"]][f"{row['phase']}_Comments"]).decision or ""
            )
    assert (folder / "study.summary.html").read_text().count("data:image/png") == 3
    assert pdf_facts(folder / "study.summary.pdf") == (4, "QC summary: study.json")
    assert lead.report_links.value.count("<a download=") == 3


def test_assign_from_the_lead_view_never_overwrites(team, lead):
    """Assigning from the lead's view splits like `cmrqc assign` (seeded, overlap) and never overwrites."""
    lee = QCStore(team, "lee").folder
    shutil.copy(QCStore(team, REVIEWER).path("demo.json"), lee / "pilot.json")
    lead._refresh_assign_options()
    lead.assign_source.value = "pilot.json"
    lead.assign_users.value = ("ann", "ben")
    lead.assign_overlap.value = "20%"
    lead.assign_seed.value = 3
    lead.assign_button.click()
    got = {u: list(read_dataset_file(QCStore(team, u).path("pilot.json"))) for u in ("ann", "ben")}
    want = assign(team, lee / "pilot.json", ["x1", "x2"], overlap=0.2, seed=3)  # same rules, other reviewers
    assert got == {"ann": want.patients["x1"], "ben": want.patients["x2"]}
    assert "pilot.json" in lead.dataset_dropdown.options
    with QCStore(team, "ann").open("pilot.json") as ds:
        ds.save(ds.patients[0], "ED", "reject", "mine")
    with pytest.raises(CmrqcError, match="never overwritten"):
        lead.state.assign("pilot.json", ("ann",), "10%", 0)
    assert QCStore(team, "ann").open("pilot.json").get(got["ann"][0], "ED").decision == "reject"
    with pytest.raises(CmrqcError, match="reviewers of the team"):
        lead.state.assign("pilot.json", ("../etc",), "10%", 0)


def test_a_re_read_with_nothing_changed_redraws_nothing(team, lead, monkeypatch):
    """Re-reading unchanged files only updates the "read at" time: nothing is redrawn, the selection stays."""
    from cmrqc_widgets.widgets import lead as lead_module

    decide(team, "ann", "ED", ["accept"])
    decide(team, "ben", "ED", ["reject"])
    decide(team, "cat", "ED", ["accept"])
    lead.refresh_button.click()
    lead.queue.value = 0
    drawn = []
    draw = lead_module.confusion_png
    monkeypatch.setattr(lead_module, "confusion_png", lambda pair: drawn.append(pair) or draw(pair))
    lead.refresh_button.click()
    assert drawn == [] and lead.queue.value == 0
    decide(team, "cat", "ES", ["accept"])
    lead.refresh_button.click()
    assert len(drawn) == 1 and "2 of" in lead.progress.value and lead.queue.value == 0
