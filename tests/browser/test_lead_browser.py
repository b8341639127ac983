"""The lead's view in real Chromium, beside reviewers' dashboards, served by Voilà and through JupyterHub.

Three reviewers decide, some disagreeing; the lead's page shows their progress and kappa without a
click, the lead adjudicates both disagreements there, and the report's rows match the files. Once
with plain Voilà (`cmrqc serve` / `cmrqc serve --lead`; ann in her dashboard, ben and cat through the
store API their dashboards use), once through the hub (`cmrqc hub`; every reviewer logs in and decides
in their dashboard; the lead's server lists ``lead.ipynb`` and ``review.ipynb``, the lead clicks the
first; a reviewer's server answers 404 for the lead's notebook). Screenshots in ``test-artifacts/<test>/``.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from test_dashboard import wait_for as poll

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LOAD_S = 400.0
"""Seconds a page may take to render: 60-100 s were seen on this shared 2-core machine under load."""

TEAM = ("ann", "ben", "cat")


def wait_for(predicate, timeout_s: float = 120.0, what: str = "condition"):
    """The dashboard tests' poll, with a longer default: the lead's page re-reads every 5 s."""
    return poll(predicate, timeout_s, what)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A data root: reviewers ann, ben, cat and lead lee; lee's 4-patient pilot assigned to all three."""
    from cmrqc_widgets.demo import make_demo_cohort
    from cmrqc_widgets.qc.team import assign
    from cmrqc_widgets.serve.auth import add_user

    root = tmp_path_factory.mktemp("lead-root")
    for name in (*TEAM, "lee"):
        add_user(root, name, "team-pass-12345", lead=name == "lee")
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
    from cmrqc_widgets.qc.study_report import read_report_csv
    from cmrqc_widgets.qc.team import agreement
    from cmrqc_widgets.store import QCStore, read_dataset_file
    from cmrqc_widgets.store.fileformat import parse_decision

    review_url = start_voila(study, "ann", "review.ipynb")
    lead_url = start_voila(study, "lee", "lead.ipynb")
    lead = new_page()
    lead.goto(lead_url, wait_until="commit")
    progress = lead.locator(".cmrqc-progress").first
    wait_for(lambda: progress.count() and "last active never" in progress.inner_text(), LOAD_S, "the lead")
    for user in TEAM:
        n, total = decided(study, user)
        assert re.search(rf"{user}\s+{n} of {total} decided, last active never", progress.inner_text())
    shot(lead, "lead-before", full_page=True)

    # ann decides in her dashboard: patient 1 reject, patient 2 accept (ED).
    ann = new_page()
    ann.goto(review_url, wait_until="commit")
    button = ann.get_by_role("button", name=re.compile(r"\breject \(", re.IGNORECASE)).first
    button.wait_for(state="visible", timeout=LOAD_S * 1000)
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

    wait_for(caught_up, 60, "the lead's page to show the new decisions")
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
    wait_for(lambda: report.exists() and lead.locator(".cmrqc-report-links a").count() == 3, 240, "report")
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
    banner.wait_for(state="visible", timeout=LOAD_S * 1000)
    assert banner.inner_text().startswith("ben is not a lead")
    shot(page, "refused", full_page=True)
    body = page.locator("body").inner_text()
    assert "decided" not in body and "ann" not in body and page.locator(".cmrqc-progress").count() == 0


def decision(page, word: str):
    """The dashboard's decision button for ``word`` ("Reject (R)", with a check icon when active)."""
    label = "fine-tune" if word == "finetune" else word
    return page.get_by_role("button", name=re.compile(rf"\b{label} \(", re.IGNORECASE)).first


def saved(root: Path, user: str, patient: str, phase: str = "ED") -> str | None:
    """``user``'s decision on disk (file and journal), read without writing anything."""
    from cmrqc_widgets.store import QCStore
    from cmrqc_widgets.store.snapshot import read_snapshot

    return read_snapshot(QCStore(root, user).path("study.json")).decisions[patient][phase].decision


def log_in(page, hub_url: str, user: str, *, dashboard: bool = True) -> None:
    """Log in to the hub as ``user``; wait for their dashboard's decision buttons (a lead's: their list)."""
    page.goto(f"{hub_url}/hub/login")
    page.fill("#username_input", user)
    page.fill("#password_input", "team-pass-12345")
    page.click("#login_submit", no_wait_after=True)
    if dashboard:
        decision(page, "reject").wait_for(state="visible", timeout=LOAD_S * 1000)
    else:
        landing = re.compile(re.escape(f"{hub_url}/user/{user}/") + r"(\?.*)?$")
        page.wait_for_url(landing, timeout=LOAD_S * 1000)


def check_report(root: Path, rows: list[dict[str, str]], patients: list[str]) -> None:
    """Every report row holds what the reviewers' files and the consensus file say."""
    from cmrqc_widgets.store import QCStore, read_dataset_file
    from cmrqc_widgets.store.fileformat import parse_decision

    files = {u: read_dataset_file(QCStore(root, u).path("study.json")) for u in TEAM}
    final = read_dataset_file(QCStore(root, "lee").path("study.consensus.json"))
    assert sorted((r["patient"], r["phase"]) for r in rows) == sorted(
        (p, ph) for p in patients for ph in ("ED", "ES")
    )
    for row in rows:
        field = f"{row['phase']}_Comments"
        for user in TEAM:
            mine = parse_decision(files[user][row["patient"]][field])
            assert (row[user], row[f"{user}_comment"]) == (mine.decision or "", mine.comment)
        lead = parse_decision(final[row["patient"]][field])
        if lead.decision:
            assert (row["consensus"], row["consensus_source"], row["adjudicated_by"]) == (
                lead.decision,
                "lead",
                "lee",
            )


@pytest.fixture(scope="module")
def hub_study(tmp_path_factory):
    """Like ``study``, on a data root of its own for the hub."""
    from cmrqc_widgets.demo import make_demo_cohort
    from cmrqc_widgets.qc.team import assign
    from cmrqc_widgets.serve.auth import add_user

    root = tmp_path_factory.mktemp("hub-lead-root")
    for name in (*TEAM, "lee"):
        add_user(root, name, "team-pass-12345", lead=name == "lee")
    make_demo_cohort(root, "lee", dataset="pilot.json", n_patients=3, shape=(64, 64, 6))
    assign(root, "pilot.json", TEAM, overlap="100%", owner="lee", name="study.json")
    return root


@pytest.mark.timeout(1800)  # four users' servers start one after another: 6 min idle, 15+ min under load
def test_through_the_hub_reviewers_decide_and_the_lead_adjudicates(hub_study, start_hub, new_page, shot):
    """Through JupyterHub: three reviewers decide in their dashboards, the lead follows and adjudicates."""
    from cmrqc_widgets.qc.study_report import read_report_csv
    from cmrqc_widgets.qc.team import agreement
    from cmrqc_widgets.store import QCStore, read_dataset_file

    hub = start_hub(hub_study)
    patients = list(read_dataset_file(QCStore(hub_study, "ann").path("study.json")))
    lee = new_page()
    log_in(lee, hub, "lee", dashboard=False)
    # The lead's server lists the two notebooks it serves, and nothing else.
    links = lee.locator("a[href*='voila/render/']")
    wait_for(lambda: links.count() == 2, LOAD_S, "the lead's list of notebooks")
    assert sorted(links.all_inner_texts()) == ["lead.ipynb", "review.ipynb"], links.all_inner_texts()
    shot(lee, "lead-landing", full_page=True)
    with lee.expect_popup() as opened:  # Voilà's list opens a notebook in a new tab
        lee.get_by_role("link", name="lead.ipynb").click()
    lee = opened.value
    lee.set_default_timeout(60_000)
    progress = lee.locator(".cmrqc-progress").first
    wait_for(
        lambda: progress.count() and "last active never" in progress.inner_text(), LOAD_S, "the lead's page"
    )

    plan = {"ann": ("reject", "accept"), "ben": ("accept", "accept"), "cat": ("reject", "finetune")}
    for user, words in plan.items():
        page = new_page()
        log_in(page, hub, user)
        for i, word in enumerate(words):
            if i:
                decision(page, "accept").hover()
                page.keyboard.press("ArrowDown")
                wait_for(
                    lambda p=page, n=i + 1: (
                        f"patient {n} of" in p.locator("text=/patient \\d+ of/").first.inner_text()
                    )
                )
            decision(page, word).click()
            done = f"{user}'s {word} saved"
            wait_for(lambda u=user, k=i, w=word: saved(hub_study, u, patients[k]) == w, what=done)
        shot(page, f"{user}-decided", full_page=True)
        page.close()
    last_save = time.monotonic()

    def caught_up() -> bool:
        text = progress.inner_text()
        return all(  # reviewers on a loaded machine take minutes
            re.search(rf"{u}\s+2 of 6 decided, last active (just now|\d+ min ago)", text) for u in TEAM
        )

    wait_for(caught_up, 60, "the lead's page to show every reviewer's decisions")
    seen_after = time.monotonic() - last_save
    print(f"\n[hub] the lead's page showed the last decision {seen_after:.1f} s after it was saved")
    kappa = agreement(hub_study, "study.json", TEAM).phases["ED"].kappa
    assert (
        f"{'undefined' if kappa is None else f'{kappa:.2f}'} (Fleiss)"
        in lee.locator(".cmrqc-agreement").first.inner_text()
    )

    queue = lee.locator(".cmrqc-queue select").first
    wait_for(lambda: queue.locator("option").count() == 2, what="two disagreements")
    consensus = QCStore(hub_study, "lee").path("study.consensus.json")
    for index, word in enumerate(("reject", "finetune")):
        queue.select_option(index=index)
        lee.get_by_role("button", name="Open").click()
        name = Path(patients[index]).name
        wait_for(
            lambda n=name: n in lee.locator(".cmrqc-side-by-side").first.inner_text(), what=f"{name} opened"
        )
        lee.locator(".cmrqc-final button", has_text=re.compile(rf"^{word}$")).click()
        lee.get_by_role("button", name="Record final decision").click()
        wait_for(lambda k=index, w=word: consensus.exists()
                 and read_dataset_file(consensus)[patients[k]]["ED_Comments"].startswith(f"{w}:"),
                 what=f"{name} recorded")  # fmt: skip
    lee.get_by_role("button", name="Write report").click()
    report = QCStore(hub_study, "lee").folder / "study.report.csv"
    wait_for(lambda: report.exists() and lee.locator(".cmrqc-report-links a").count() == 3, 240, "the report")
    rows = read_report_csv(report)
    check_report(hub_study, rows, patients)
    assert sum(r["consensus_source"] == "lead" for r in rows) == 2
    shot(lee, "lead-done", full_page=True)

    # A reviewer's server does not serve the lead's notebook at all, nor a list of notebooks.
    ann = new_page()
    log_in(ann, hub, "ann")
    for path in ("voila/render/lead.ipynb", "voila/tree", "voila/render/review.ipynb"):
        response = ann.goto(f"{hub}/user/ann/{path}")
        assert response is not None and response.status in (403, 404), (path, response and response.status)
        assert ann.locator(".cmrqc-progress").count() == 0
    # The lead's server serves the review notebook too: the lead can review their own cases.
    lee.goto(f"{hub}/user/lee/voila/render/review.ipynb", wait_until="commit", timeout=LOAD_S * 1000)
    decision(lee, "reject").wait_for(state="visible", timeout=LOAD_S * 1000)
