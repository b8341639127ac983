"""JupyterHub with our config, in real Chromium: login, landing on the dashboard, isolation, lockout.

One hub (trial spawner, sqlite in tmp, free ports) serves the module. Login times are printed,
not asserted. Screenshots in ``test-artifacts/<test>/``.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request

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
    landing = re.compile(re.escape(f"{hub_url}/user/{user}/") + r"(\?.*)?$")
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
    response = pages[alice].goto(f"{hub.url}/user/{bob}/")
    shot(pages[alice], "alice-opens-bobs-url", full_page=True)
    refused = response is not None and response.status in (403, 404)
    redirected = f"/user/{alice}/" in pages[alice].url
    assert refused or redirected, (response and response.status, pages[alice].url)
    assert hub.datasets[bob].name not in pages[alice].content()

    # A reviewer's own server serves the dashboard only: no JupyterLab, no notebook UI, no terminal.
    for path in ("lab", "tree", "terminals/1"):
        response = pages[alice].goto(f"{hub.url}/user/{alice}/{path}")
        assert response is not None and response.status in (403, 404), (path, response and response.status)


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
    add_user(hub.root, "carol", "crimson-lynx-33")  # the hub re-reads users.json at each login
    page = new_page()
    for attempt in range(hub.max_failures):
        submit_login(page, hub.url, "carol", f"guess-{attempt}")
        page.wait_for_selector(".login_error")
    submit_login(page, hub.url, "carol", "crimson-lynx-33")
    page.wait_for_selector(".login_error")
    shot(page, "locked-out")
    assert "/hub/login" in page.url
    assert "locked out" in hub.server.log()
    # Someone else is not affected by carol's lockout.
    add_user(hub.root, "dave", "silver-otter-44")
    other = new_page()
    submit_login(other, hub.url, "dave", "silver-otter-44")
    other.wait_for_url(re.compile(r"/(hub/spawn-pending|user)/dave"), timeout=60_000)


# --- What a logged-in reviewer can do from her own browser: click, never run code. -------------

# Recorded by an init script: every WebSocket the page opens, exactly as the page opens it.
RECORD_SOCKETS = """
(() => {
  const Native = window.WebSocket;
  window.__sockets = [];
  window.__models = {};  // widget model id -> its latest state, from what the kernel sent
  const dec = new TextDecoder();
  const unpack = async data => {
    if (typeof data === 'string') return JSON.parse(data);
    const buffer = data instanceof Blob ? await data.arrayBuffer() : data;
    const view = new DataView(buffer), n = Number(view.getBigUint64(0, true));
    const offsets = [...Array(n).keys()].map(i => Number(view.getBigUint64(8 * (i + 1), true)));
    const part = i => JSON.parse(dec.decode(new Uint8Array(buffer, offsets[i],
                                                          offsets[i + 1] - offsets[i])));
    return {header: part(1), parent_header: part(2), content: part(4), msg_type: part(1).msg_type};
  };
  const remember = (id, state) => {
    if (state) window.__models[id] = Object.assign(window.__models[id] || {}, state);
  };
  window.WebSocket = function (url, protocols) {
    const ws = new Native(url, protocols);
    window.__sockets.push(ws);
    ws.addEventListener('message', async event => {
      try {
        const msg = await unpack(event.data);
        const content = msg.content || {}, data = content.data || {};
        if (msg.msg_type === 'comm_open') remember(content.comm_id, data.state);
        if (data.method === 'update') remember(content.comm_id, data.state);
        if (data.method === 'update_states') {
          for (const [id, model] of Object.entries(data.states || {})) remember(id, model.state);
        }
      } catch (e) { /* not a message we read */ }
    });
    return ws;
  };
  window.WebSocket.prototype = Native.prototype;
  Object.assign(window.WebSocket, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});
})();
"""

# Sends an execute_request, then a kernel_info_request, on every open kernel socket of the page, in
# the socket's own wire format (Jupyter's binary v1 protocol, or JSON text); resolves with what
# came back. The kernel handles shell messages in order, so a kernel_info_reply proves the
# execute_request had its chance to run first.
SEND_EXECUTE = """
async (code) => {
  const enc = new TextEncoder(), dec = new TextDecoder();
  const v1 = ws => ws.protocol === 'v1.kernel.websocket.jupyter.org';
  const pack = (ws, msg) => {
    if (!v1(ws)) return JSON.stringify(msg);
    const parts = [msg.channel, msg.header, msg.parent_header, msg.metadata, msg.content]
      .map((p, i) => enc.encode(i === 0 ? p : JSON.stringify(p)));
    const n = parts.length + 1, head = 8 * (1 + n);
    const total = head + parts.reduce((a, p) => a + p.length, 0);
    const out = new Uint8Array(total), view = new DataView(out.buffer);
    view.setBigUint64(0, BigInt(n), true);
    let offset = head;
    view.setBigUint64(8, BigInt(offset), true);
    parts.forEach((p, i) => { out.set(p, offset); offset += p.length;
                              view.setBigUint64(8 * (i + 2), BigInt(offset), true); });
    return out.buffer;
  };
  const unpack = async data => {
    if (typeof data === 'string') return JSON.parse(data);
    const buffer = data instanceof Blob ? await data.arrayBuffer() : data;
    const view = new DataView(buffer), n = Number(view.getBigUint64(0, true));
    const offsets = [...Array(n).keys()].map(i => Number(view.getBigUint64(8 * (i + 1), true)));
    const part = i => JSON.parse(dec.decode(new Uint8Array(buffer, offsets[i],
                                                          offsets[i + 1] - offsets[i])));
    return {header: part(1), parent_header: part(2), msg_type: part(1).msg_type};
  };
  const message = (type, content) => ({
    header: {msg_id: crypto.randomUUID(), username: 'x', session: crypto.randomUUID(),
             msg_type: type, version: '5.3', date: new Date().toISOString()},
    parent_header: {}, metadata: {}, content, channel: 'shell', buffers: [],
  });
  const kernelSockets = window.__sockets.filter(ws => ws.url.includes('/channels'));
  const results = [];
  for (const ws of kernelSockets) {
    const execute = message('execute_request', {code, silent: false, store_history: false,
      user_expressions: {}, allow_stdin: false, stop_on_error: true});
    const info = message('kernel_info_request', {});
    const seen = [];
    let answered = false;
    const done = new Promise(resolve => {
      ws.addEventListener('message', async event => {
        const reply = await unpack(event.data);
        const parent = reply.parent_header && reply.parent_header.msg_id;
        if (parent === execute.header.msg_id) seen.push(reply.msg_type);
        if (parent === info.header.msg_id && reply.msg_type === 'kernel_info_reply') {
          answered = true; resolve();
        }
      });
      setTimeout(resolve, 20000);
    });
    ws.send(pack(ws, execute));
    ws.send(pack(ws, info));
    await done;
    results.push({url: ws.url, protocol: ws.protocol, state: ws.readyState, seen, answered});
  }
  return {count: kernelSockets.length, results};
}
"""


def canary_code(path) -> str:
    """Python that leaves a file behind if it ever runs on the server."""
    return f"open({str(path)!r}, 'w').write('code ran on the server')"


@pytest.fixture(scope="module")
def alice_page(hub_server, browser):
    """alice logged in once for the module, on her dashboard, every websocket of the page recorded."""
    context = browser.new_context(viewport={"width": 1600, "height": 1200})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.add_init_script(RECORD_SOCKETS)
    submit_login(page, hub_server.url, "alice", hub_server.passwords["alice"])
    wait_for_dashboard(page, hub_server.url, "alice")
    yield page
    context.close()


def test_code_sent_over_the_dashboards_websockets_never_runs(hub_server, alice_page, tmp_path):
    """An execute_request over every kernel websocket alice's page holds writes no canary file."""
    canary = tmp_path / "canary-websocket"
    result = alice_page.evaluate(SEND_EXECUTE, canary_code(canary))
    assert result["count"] >= 1, "the dashboard holds no kernel websocket: nothing was tried"
    for socket in result["results"]:
        assert socket["answered"], f"the kernel never answered on this socket: {socket}"
        assert "execute_reply" not in socket["seen"], socket
    time.sleep(2)
    assert not canary.exists()
    # The dashboard still works after the attempt.
    alice_page.get_by_role("button", name=DECISION).first.click()
    wait_for_file(hub_server.datasets["alice"], "reject:")


def test_no_kernel_can_be_started_over_rest(hub_server, alice_page, tmp_path):
    """POST /user/alice/api/kernels with her _xsrf cookie is refused: no kernel, no code."""
    cookies = {c["name"]: c["value"] for c in alice_page.context.cookies()}
    headers = {"X-XSRFToken": cookies["_xsrf"]} if "_xsrf" in cookies else {}
    for path in ("api/kernels", "api/sessions"):
        response = alice_page.request.post(
            f"{hub_server.url}/user/alice/{path}", data=json.dumps({"name": "python3"}), headers=headers
        )
        assert response.status in (403, 404, 405), (path, response.status, response.text()[:300])
    assert alice_page.request.get(f"{hub_server.url}/user/alice/api/kernels").status in (403, 404)


JUPYTER_PATHS = [
    "api/kernels",
    "api/contents",
    "api/contents/review.ipynb",
    "api/sessions",
    "api/terminals",
    "api/kernelspecs",
    "files/review.ipynb",
    "view/review.ipynb",
    "nbconvert/html/review.ipynb",
    "voila/render/tutorial.ipynb",
    "voila/render/review.ipynb",
    "voila/tree",
    "voila/api/contents",
    "voila/files/review.ipynb",
    "voila/files/images/dashboard.png",
    "terminals/1",
    "lab",
    "tree",
    "edit/review.ipynb",
]


def test_jupyter_paths_are_refused(hub_server, alice_page):
    """Every Jupyter path beyond the dashboard answers 403 or 404 to a logged-in reviewer."""
    answers = {}
    for path in JUPYTER_PATHS:
        answers[path] = alice_page.request.get(f"{hub_server.url}/user/alice/{path}").status
    assert all(status in (403, 404) for status in answers.values()), answers


def test_dashboard_files_come_compressed_and_cached(hub_server, alice_page):
    """Through the hub too, JavaScript comes gzipped and files named by their hash are cached a year."""
    config = alice_page.evaluate("JSON.parse(document.getElementById('jupyter-config-data').textContent)")
    extension = next(e for e in config["federated_extensions"] if e["name"] == "anywidget")
    asset = f"{hub_server.url}/user/alice/voila/labextensions/anywidget/{extension['load']}?v=1"
    response = alice_page.request.get(asset, headers={"Accept-Encoding": "gzip"})
    assert response.status == 200
    assert response.headers.get("content-encoding") == "gzip", response.headers
    assert "immutable" in response.headers.get("cache-control", ""), response.headers


def test_bobs_files_are_never_readable_through_alices_session(hub_server, alice_page):
    """Nothing alice can ask her server for returns bob's dataset, by any path."""
    bob_file = hub_server.datasets["bob"]
    secret = next(iter(json.loads(bob_file.read_text())))  # a patient key only bob's file holds
    relative = "/".join([".."] * 12) + str(bob_file)
    for path in (
        f"voila/files/{bob_file}",
        f"voila/files/{relative}",
        f"voila/files/{relative.replace('/', '%2F')}",
        f"files/{relative}",
        f"api/contents/{relative}",
        f"voila/render/{relative}",
        f"static/{relative}",
        f"voila/static/{relative}",
        f"voila/templates/{relative}",
        f"voila/labextensions/{relative}",
    ):
        response = alice_page.request.get(f"{hub_server.url}/user/alice/{path}")
        assert bob_file.name not in response.text() and secret not in response.text(), path
        assert response.status in (403, 404), (path, response.status)
    response = alice_page.request.get(f"{hub_server.url}/user/bob/")
    assert bob_file.name not in response.text()


def test_hub_secrets_are_private(hub_server, alice_page):
    """The hub's state folder is 0700, its cookie secret and database 0600, while reviewers work."""
    import stat

    def mode(path):
        return stat.S_IMODE(path.stat().st_mode)

    state = hub_server.state
    assert mode(state) == 0o700
    assert mode(state / "jupyterhub_cookie_secret") == 0o600
    assert mode(state / "jupyterhub.sqlite") == 0o600
    for extra in state.glob("jupyterhub.sqlite-*"):  # journal files, if any right now
        assert mode(extra) & 0o077 == 0, extra


# Sends crafted widget messages (comm_msg) on the page's kernel socket, in its wire format, then a
# kernel_info_request to know they were all handled. ``messages`` is a list of
# [model description or model name, data]: the widget is found by what the kernel told the page.
SEND_COMM = """
async (messages) => {
  const enc = new TextEncoder();
  const ws = window.__sockets.find(s => s.url.includes('/channels') && s.readyState === 1);
  const v1 = ws.protocol === 'v1.kernel.websocket.jupyter.org';
  const pack = msg => {
    if (!v1) return JSON.stringify(msg);
    const parts = [msg.channel, msg.header, msg.parent_header, msg.metadata, msg.content]
      .map((p, i) => enc.encode(i === 0 ? p : JSON.stringify(p)));
    const n = parts.length + 1, head = 8 * (1 + n);
    const out = new Uint8Array(head + parts.reduce((a, p) => a + p.length, 0));
    const view = new DataView(out.buffer);
    view.setBigUint64(0, BigInt(n), true);
    let offset = head;
    view.setBigUint64(8, BigInt(offset), true);
    parts.forEach((p, i) => { out.set(p, offset); offset += p.length;
                              view.setBigUint64(8 * (i + 2), BigInt(offset), true); });
    return out.buffer;
  };
  const message = (type, content) => ({
    header: {msg_id: crypto.randomUUID(), username: 'x', session: crypto.randomUUID(),
             msg_type: type, version: '5.3', date: new Date().toISOString()},
    parent_header: {}, metadata: {}, content, channel: 'shell', buffers: [],
  });
  const sent = [];
  for (const [target, data] of messages) {
    const id = Object.keys(window.__models).find(k => {
      const m = window.__models[k];
      return m.description === target || m._model_name === target;
    });
    if (!id) continue;
    ws.send(pack(message('comm_msg', {comm_id: id, data: Object.assign({buffer_paths: []}, data)})));
    sent.push(target);
  }
  const info = message('kernel_info_request', {});
  const answered = await new Promise(resolve => {
    ws.addEventListener('message', async event => {
      const text = typeof event.data === 'string' ? event.data
        : new TextDecoder().decode(event.data instanceof Blob ? await event.data.arrayBuffer() : event.data);
      if (text.includes(info.header.msg_id) && text.includes('kernel_info_reply')) resolve(true);
    });
    setTimeout(() => resolve(false), 20000);
    ws.send(pack(info));
  });
  return {sent, answered};
}
"""


def test_crafted_widget_messages_write_nothing_outside_the_rules(hub_server, alice_page):
    """Forged comm messages (indexes, a megabyte comment, clicks) reach the kernel and write nothing wrong."""
    root = hub_server.root
    mine = root / "users" / "alice"

    def outside() -> dict[str, bytes]:
        return {
            str(p): p.read_bytes()
            for p in root.rglob("*")
            if p.is_file() and mine not in p.parents and not p.name.endswith(".lock")
        }

    before = outside()
    huge = "x" * 1_000_000
    result = alice_page.evaluate(
        SEND_COMM,
        [
            ["Dataset", {"method": "update", "state": {"index": 99}}],
            ["SelectModel", {"method": "update", "state": {"index": 100000}}],
            ["TextareaModel", {"method": "update", "state": {"value": huge}}],
            ["Clear", {"method": "update", "state": {"disabled": False}}],
            ["Clear", {"method": "custom", "content": {"event": "click"}}],
            ["Reject (R)", {"method": "custom", "content": {"event": "click"}}],
        ],
    )
    assert result["answered"], result
    assert {"Dataset", "TextareaModel", "Clear", "Reject (R)"} <= set(result["sent"]), result
    time.sleep(2)
    assert outside() == before
    for path in mine.iterdir():
        if path.is_file():
            assert huge[:10_001] not in path.read_text(errors="replace"), path
    alice_page.get_by_text("too long").first.wait_for(timeout=30_000)  # the one sentence, on screen


def test_logout_ends_the_session_even_for_a_copied_cookie(hub_server, browser, new_page):
    """A hub cookie copied before logout is refused after it; before logout the copy worked."""
    from cmrqc_widgets.serve.auth import add_user

    hub = hub_server
    add_user(hub.root, "erin", "velvet-crane-55")
    page = new_page()
    page.goto(f"{hub.url}/hub/login?next=%2Fhub%2Fhome")  # home, not a server: nothing is spawned
    page.fill("#username_input", "erin")
    page.fill("#password_input", "velvet-crane-55")
    page.click("#login_submit")
    page.wait_for_url(re.compile(r"/hub/home"))
    copied = page.context.cookies()

    def home_with(cookies) -> str:
        thief = browser.new_context()
        try:
            thief.add_cookies(cookies)
            other = thief.new_page()
            other.goto(f"{hub.url}/hub/home")
            return other.url
        finally:
            thief.close()

    assert "/hub/home" in home_with(copied)  # the copy is as good as the original
    page.goto(f"{hub.url}/hub/logout")
    assert "/hub/login" in home_with(copied)
    assert "Session of erin ended" in hub.server.log()


def test_unauthenticated_requests_start_no_kernel(hub_server, alice_page):
    """Requests without a login (as curl sends them) never reach Voilà: no kernel starts."""
    import psutil

    def kernels() -> int:
        tree = psutil.Process(hub_server.server.process.pid).children(recursive=True)
        return sum(1 for p in tree if "ipykernel_launcher" in " ".join(p.cmdline()))

    before = kernels()
    assert before >= 1  # alice's open dashboard holds one
    statuses = []
    for _ in range(5):
        for path in ("", "voila/render/review.ipynb", "api/kernels"):
            request = urllib.request.Request(f"{hub_server.url}/user/alice/{path}")
            opener = urllib.request.build_opener(_NoRedirect)
            try:
                statuses.append(opener.open(request, timeout=30).status)
            except urllib.error.HTTPError as exc:
                statuses.append(exc.code)
    assert set(statuses) <= {302, 401, 403}, statuses
    time.sleep(3)
    assert kernels() == before


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Report redirects (to the hub's login) instead of following them."""

    def redirect_request(self, *args, **kwargs):
        return None


def test_dashboard_listens_on_a_private_socket_not_a_port(hub_server, alice_page):
    """alice's Voilà takes no TCP port another account could reach around the login: only a Unix
    socket (0600) in a private folder (0700), which her login proxy forwards to."""
    import os
    import stat

    import psutil

    tree = psutil.Process(hub_server.server.process.pid).children(recursive=True)
    # Voilà itself, not the login proxy in front of it (whose port the hub routes to).
    voilas = [p for p in tree if p.cmdline()[1:3] == ["-m", "cmrqc_widgets.serve.app"]]
    assert voilas, "no reviewer's Voilà is running"
    for voila in voilas:
        listening = [c for c in voila.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
        assert listening == [], listening
        sockets = {c.laddr for c in voila.net_connections(kind="unix") if c.laddr}
        assert sockets, "Voilà listens on no Unix socket"
        for path in sockets:
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
            assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700, path
