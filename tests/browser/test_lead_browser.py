"""The lead's view in real Chromium, beside a reviewer's dashboard, both served by Voilà.

Three reviewers decide (ann in her dashboard in the browser; ben and cat through the same store API
their dashboards use), some disagreeing; the lead's page shows their progress and kappa without a
click, the lead adjudicates both disagreements there, and the report's rows match the files.
Served by plain Voilà (`cmrqc serve` / `cmrqc serve --lead`): the hub rework of issue 11 had not
landed when this was written. Screenshots in ``test-artifacts/<test>/``.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TEAM = ("ann", "ben", "cat")


def wait_for(predicate, timeout_s: float = 30.0, what: str = "condition"):
    """Poll ``predicate`` until it returns something truthy; return it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A data root: reviewers ann, ben, cat and lead lee; lee's 4-patient pilot assigned to all three."""
    from cmrqc_widgets.demo import make_demo_cohort
    from cmrqc_widgets.qc.team import assign
    from cmrqc_widgets.serve.auth import add_user

    root = tmp_path_factory.mktemp("lead-root")
    for name in (*TEAM, "lee"):
        add_user(root, name, f"{name}-pw", lead=name == "lee")
    make_demo_cohort(root, "lee", dataset="pilot.json", n_patients=4, shape=(64, 64, 6))
    assign(root, "pilot.json", TEAM, overlap="100%", owner="lee", name="study.json")
    return root


def decided(root: Path, user: str) -> tuple[int, int]:
    """(decided case-phases, all case-phases) in ``user``'s study.json on disk."""
    from cmrqc_widgets.store import QCStore

    with QCStore(root, user).open("study.json") as ds:
        stats = ds.statistics()
    return stats.decided(), 2 * stats.total


def test_lead_sees_progress_and_kappa_adjudicates_and_reports(study, start_voila, new_page, shot):
    """Reviewers decide; the lead sees it in seconds, adjudicates twice; the report matches the files."""
    from cmrqc_widgets.qc.report import read_report_csv
    from cmrqc_widgets.qc.team import agreement
    from cmrqc_widgets.store import QCStore, read_dataset_file
    from cmrqc_widgets.store.fileformat import parse_decision

    review_url = start_voila(study, "ann", "review.ipynb")
    lead_url = start_voila(study, "lee", "lead.ipynb")
    lead = new_page()
    lead.goto(lead_url, wait_until="commit")
    progress = lead.locator(".cmrqc-progress").first
    wait_for(lambda: "last active never" in progress.inner_text(), 120, "the lead's progress table")
    for user in TEAM:
        n, total = decided(study, user)
        assert re.search(rf"{user}\s+{n} of {total} decided, last active never", progress.inner_text())
    shot(lead, "lead-before", full_page=True)

    # ann decides in her dashboard: patient 1 reject, patient 2 accept (ED).
    ann = new_page()
    ann.goto(review_url, wait_until="commit")
    button = ann.get_by_role("button", name=re.compile(r"\breject \(", re.IGNORECASE)).first
    button.wait_for(state="visible", timeout=120_000)
    button.click()
    patients = list(read_dataset_file(QCStore(study, "ann").path("study.json")))
    wait_for(lambda: QCStore(study, "ann").open("study.json").get(patients[0], "ED").decision == "reject")
    ann.get_by_role("button", name=re.compile(r"\baccept \(", re.IGNORECASE)).first.hover()
    ann.keyboard.press("ArrowDown")
    wait_for(lambda: "patient 2 of" in ann.locator("text=/patient \\d+ of \\d+/").first.inner_text())
    ann.get_by_role("button", name=re.compile(r"\baccept \(", re.IGNORECASE)).first.click()
    wait_for(lambda: QCStore(study, "ann").open("study.json").get(patients[1], "ED").decision == "accept")
    # ben and cat through the store their dashboards write to.
    for user, words in (("ben", ("accept", "accept")), ("cat", ("reject", "finetune"))):
        with QCStore(study, user).open("study.json") as ds:
            for patient, word in zip(patients, words, strict=False):
                ds.save(patient, "ED", word, f"{user}: {word}", seconds=9)
    last_save = time.monotonic()

    # The lead's page follows by itself (periodic re-read), no click.
    def caught_up() -> bool:
        text = progress.inner_text()
        return all(re.search(rf"{u}\s+2 of 8 decided, last active just now", text) for u in TEAM)

    wait_for(caught_up, 30, "the lead's page to show the new decisions")
    seen_after = time.monotonic() - last_save
    print(f"\n[lead] progress and kappa on the lead's page {seen_after:.1f} s after the last save")
    kappa = agreement(study, "study.json", TEAM).phases["ED"].kappa
    text = lead.locator(".cmrqc-agreement").first.inner_text()
    assert f"{'undefined' if kappa is None else f'{kappa:.2f}'} (Fleiss)" in text
    shot(lead, "lead-after-decisions", full_page=True)

    # Adjudicate both disagreements.
    queue = lead.locator(".cmrqc-queue select").first
    wait_for(lambda: queue.locator("option").count() == 2, what="two disagreements in the queue")
    finals = {}
    for index, word in enumerate(("reject", "accept")):
        queue.select_option(index=index)
        lead.get_by_role("button", name="Open").click()
        name = queue.locator("option").nth(index).inner_text().split()[0]
        side = lead.locator(".cmrqc-side-by-side").first
        wait_for(lambda n=name, s=side: n in s.inner_text(), what=f"{name} side by side")
        for user in ("ben", "cat"):
            assert f"{user}:" in side.inner_text()
        lead.locator(".cmrqc-final button", has_text=re.compile(rf"^{word}$")).click()
        lead.locator(".cmrqc-final-comment input").fill(f"lead settles {name}")
        lead.get_by_role("button", name="Record final decision").click()
        finals[name] = word
        consensus = QCStore(study, "lee").path("study.consensus.json")

        def recorded(n=name, w=word, consensus=consensus) -> bool:
            if not consensus.exists():
                return False
            data = read_dataset_file(consensus)
            return any(
                Path(k).name == n and parse_decision(v["ED_Comments"]).decision == w for k, v in data.items()
            )

        wait_for(recorded, what=f"{name} recorded in the consensus")
    shot(lead, "lead-adjudicated", full_page=True)

    # The report: every row matches the files on disk.
    lead.get_by_role("button", name="Write report").click()
    report = QCStore(study, "lee").folder / "study.report.csv"
    wait_for(lambda: report.exists() and lead.locator(".cmrqc-report-links a").count() == 2, 60, "the report")
    rows = read_report_csv(report)
    files = {u: read_dataset_file(QCStore(study, u).path("study.json")) for u in TEAM}
    final = read_dataset_file(QCStore(study, "lee").path("study.consensus.json"))
    assert len(rows) == 2 * len(patients)
    for row in rows:
        field = f"{row['phase']}_Comments"
        for user in TEAM:
            assert row[user] == (parse_decision(files[user][row["patient"]][field]).decision or "")
        lead_decision = parse_decision(final[row["patient"]][field]).decision
        if lead_decision:
            assert (row["consensus"], row["adjudicated_by"]) == (lead_decision, "lee")
            assert finals[Path(row["patient"]).name] == lead_decision
    assert sum(r["consensus_source"] == "lead" for r in rows) == 2


def test_a_reviewer_opening_the_lead_notebook_gets_one_sentence(study, start_voila, new_page, shot):
    """Served to a reviewer, the lead's notebook shows one sentence refusing it and no one's decisions."""
    url = start_voila(study, "ben", "lead.ipynb")
    page = new_page()
    page.goto(url, wait_until="commit")
    banner = page.locator(".cmrqc-banner").first
    banner.wait_for(state="visible", timeout=120_000)
    assert banner.inner_text().startswith("ben is not a lead")
    shot(page, "refused", full_page=True)
    body = page.locator("body").inner_text()
    assert "decided" not in body and "ann" not in body and page.locator(".cmrqc-progress").count() == 0
