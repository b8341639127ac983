"""JupyterHub with our config, in real Chromium: login, landing on the dashboard, isolation, lockout.

One hub (trial spawner, sqlite in tmp, free ports) serves the module. Login times are printed,
not asserted. Screenshots in ``test-artifacts/<test>/``.
"""

from __future__ import annotations

import json
import re
import time

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

DECISION = re.compile(r"\breject \(", re.IGNORECASE)  # "Reject (R)", with a check icon when active


def submit_login(page, hub_url: str, user: str, password: str) -> None:
    """Fill the hub's login form and submit it, without waiting for what follows."""
    page.goto(f"{hub_url}/hub/login")
    page.fill("#username_input", user)
    page.fill("#password_input", password)
    page.click("#login_submit", no_wait_after=True)


def wait_for_dashboard(page, hub_url: str, user: str, timeout_s: float = 150.0) -> None:
    """Wait until ``user``'s dashboard is loaded and its decision buttons can be clicked."""
    landing = re.compile(re.escape(f"{hub_url}/user/{user}/voila/render/review.ipynb"))
    page.wait_for_url(landing, timeout=timeout_s * 1000)
    button = page.get_by_role("button", name=DECISION).first
    button.wait_for(state="visible", timeout=timeout_s * 1000)
    assert button.is_enabled()


def wait_for_file(path, needle: str, timeout_s: float = 30.0) -> str:
    """Poll ``path`` until its text contains ``needle``; return the text."""
    deadline = time.monotonic() + timeout_s
    text = ""
    while time.monotonic() < deadline:
        text = path.read_text()
        if needle in text:
            return text
        time.sleep(0.2)
    pytest.fail(f"{path} never contained {needle!r}:\n{text[:2000]}")


def test_reviewers_log_in_to_their_own_dashboards(hub_server, new_page, shot):
    """Two reviewers log in, land on their dashboard, see and write only their own datasets."""
    hub = hub_server
    users = list(hub.passwords)
    before = {u: hub.datasets[u].read_bytes() for u in users}
    pages = {u: new_page() for u in users}
    requests: list[str] = []
    for page in pages.values():
        page.on("request", lambda request: requests.append(request.url))
        page.on("websocket", lambda ws: requests.append(ws.url))
    started = {}
    for user in users:  # both spawns run at once, as on a real morning
        started[user] = time.monotonic()
        submit_login(pages[user], hub.url, user, hub.passwords[user])
    for user in users:
        wait_for_dashboard(pages[user], hub.url, user)
        print(f"\n[hub] {user}: login -> dashboard interactive in {time.monotonic() - started[user]:.1f} s")
        shot(pages[user], f"{user}-dashboard", full_page=True)

    local = (hub.url, hub.url.replace("http://", "ws://"), f"blob:{hub.url}", "data:")
    outside = [url for url in requests if not url.startswith(local)]
    assert not outside, f"requests leaving 127.0.0.1: {outside}"

    for user in users:
        other = next(u for u in users if u != user)
        html = pages[user].content()
        assert "cdn.jsdelivr" not in html  # the offline cmrqc template is in use
        assert hub.datasets[user].name in html, f"{user} does not see their dataset"
        assert hub.datasets[other].name not in html, f"{user} sees {other}'s dataset"

    # alice decides; only alice's file changes.
    alice, bob = users
    pages[alice].get_by_role("button", name=DECISION).first.click()
    text = wait_for_file(hub.datasets[alice], "reject:")
    assert any(v.get("ED_Comments", "").startswith("reject:") for v in json.loads(text).values())
    shot(pages[alice], "alice-after-reject", full_page=True)
    assert hub.datasets[bob].read_bytes() == before[bob]
    assert not list((hub.root / "users" / bob).glob("alpha*"))
    assert not list((hub.root / "users" / alice).glob("beta*"))

    # bob decides in his own dashboard; alice's file is not touched by it.
    alice_after = hub.datasets[alice].read_bytes()
    pages[bob].get_by_role("button", name=DECISION).first.click()
    wait_for_file(hub.datasets[bob], "reject:")
    assert hub.datasets[alice].read_bytes() == alice_after

    # alice opening bob's dashboard URL is refused (or sent back to her own server).
    response = pages[alice].goto(f"{hub.url}/user/{bob}/voila/render/review.ipynb")
    shot(pages[alice], "alice-opens-bobs-url", full_page=True)
    refused = response is not None and response.status in (403, 404)
    redirected = f"/user/{alice}/" in pages[alice].url
    assert refused or redirected, (response and response.status, pages[alice].url)
    assert hub.datasets[bob].name not in pages[alice].content()

    # A reviewer's own server serves the dashboard only: no JupyterLab, no notebook UI, no terminal.
    for path in ("lab", "tree", "terminals/1"):
        response = pages[alice].goto(f"{hub.url}/user/{alice}/{path}")
        assert response is not None and response.status == 404, (path, response and response.status)


def test_wrong_password_refused(hub_server, new_page, shot):
    """A wrong password keeps the reviewer on the login page with an error."""
    hub = hub_server
    page = new_page()
    user = next(iter(hub.passwords))
    submit_login(page, hub.url, user, "not-the-password")
    page.wait_for_selector(".login_error")
    shot(page, "wrong-password")
    assert "/hub/login" in page.url
    assert "/user/" not in page.url


def test_repeated_failures_lock_out(hub_server, new_page, shot):
    """After max_failures wrong passwords even the right password is refused for a while."""
    from cmrqc_widgets.serve.auth import add_user

    hub = hub_server
    add_user(hub.root, "carol", "carol-pass-3")  # the hub re-reads users.json at each login
    page = new_page()
    for attempt in range(hub.max_failures):
        submit_login(page, hub.url, "carol", f"guess-{attempt}")
        page.wait_for_selector(".login_error")
    submit_login(page, hub.url, "carol", "carol-pass-3")
    page.wait_for_selector(".login_error")
    shot(page, "locked-out")
    assert "/hub/login" in page.url
    assert "locked out" in hub.server.log()
    # Someone else is not affected by carol's lockout.
    add_user(hub.root, "dave", "dave-pass-4")
    other = new_page()
    submit_login(other, hub.url, "dave", "dave-pass-4")
    other.wait_for_url(re.compile(r"/(hub/spawn-pending|user)/dave"), timeout=60_000)
