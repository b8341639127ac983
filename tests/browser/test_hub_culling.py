"""An idle reviewer's server stops by itself, even though the standalone proxy sits in front of it.

The standalone proxy's own "I am active" pings are switched off (``--activity-interval=0``); the hub's
proxy records the browser's real traffic and jupyterhub-idle-culler stops a server with none for
``CMRQC_HUB_CULL_TIMEOUT`` seconds. Here the timeouts are seconds instead of an hour.
"""

from __future__ import annotations

import sys
import time

import pytest
from conftest import Server, free_port, hub_test_config
from test_hub import submit_login, wait_for_dashboard

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_idle_server_is_culled(tmp_path, new_page):
    """alice's server stops by itself once her tab is closed and it stays idle."""
    pytest.importorskip("jupyterhub_idle_culler")
    from cmrqc_widgets.demo import make_demo_cohort
    from cmrqc_widgets.serve.auth import add_user
    from cmrqc_widgets.serve.voila import hub_environment

    root, state = tmp_path / "root", tmp_path / "state"
    state.mkdir()
    add_user(root, "alice", "amber-falcon-71")
    make_demo_cohort(root, "alice", dataset="alpha.json", n_patients=2)
    port = free_port()
    env = hub_environment(root, port=port, ip="127.0.0.1", state=state)
    env.update(
        CMRQC_HUB_API_PORT=str(free_port()),
        CMRQC_PROXY_API_PORT=str(free_port()),
        CMRQC_HUB_CULL_TIMEOUT="120",  # longer than a first page load on a very busy machine
        CMRQC_HUB_CULL_EVERY="10",
    )
    env.pop("JUPYTERHUB_USER", None)
    config = hub_test_config(state, env)
    argv = [sys.executable, "-m", "jupyterhub", "-f", str(config)]
    server = Server("jupyterhub-culling", argv, env, cwd=state)
    server.start()
    try:
        url = f"http://127.0.0.1:{port}"
        server.wait_for_url(f"{url}/hub/api", timeout=90, ok=lambda s: s == 200)
        page = new_page()
        submit_login(page, url, "alice", "amber-falcon-71")
        wait_for_dashboard(page, url, "alice")
        closed = time.monotonic()
        page.context.close()
        assert server.wait_for_log(r"DELETE /hub/api/users/alice/server \(idle-culler", timeout=300), (
            server.log()[-3000:]
        )
        assert server.wait_for_log(r"alice.*stop|Removing user alice from proxy", timeout=60)
        print(f"\n[cull] alice's idle server stopped {time.monotonic() - closed:.0f} s after her tab closed")
    finally:
        server.stop()
