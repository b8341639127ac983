"""JupyterHub configuration for cmrqc_widgets: reviewers log in and land on the review dashboard.

Run it with ``cmrqc hub`` (a local trial) or ``jupyterhub -f voila_config/jupyterhub_config.py``.
Settings come from the environment, so one file serves the trial and a production server:

==========================  =================================================================
``CMRQC_ROOT``              data root: ``users.json`` and ``users/<name>/`` (default ~/cmrqc)
``CMRQC_HUB_IP``            public address (default ``127.0.0.1``; ``0.0.0.0`` behind TLS only)
``CMRQC_HUB_PORT``          public port (default 8000)
``CMRQC_HUB_API_PORT``      hub's internal port, always on 127.0.0.1 (default 8081)
``CMRQC_PROXY_API_PORT``    proxy's API port, always on 127.0.0.1 (default 8001)
``CMRQC_HUB_STATE``         folder for the sqlite database and cookie secret (default <root>/.hub)
``CMRQC_HUB_SPAWNER``       ``local`` (default: one real OS user per reviewer, production) or
                            ``simple`` (everyone runs as the hub's user: a trial; ``cmrqc hub``)
==========================  =================================================================

See ``voila_config/README.md`` for the two production set-ups.
"""

# ruff: noqa: F821  (`c` is injected by JupyterHub's config loader)

import os
from pathlib import Path

from cmrqc_widgets.names import resolve_root
from cmrqc_widgets.serve import NOTEBOOK, shipped_dir

root = resolve_root(os.environ.get("CMRQC_ROOT") or None)
ip = os.environ.get("CMRQC_HUB_IP", "127.0.0.1")
port = int(os.environ.get("CMRQC_HUB_PORT", "8000"))
hub_port = int(os.environ.get("CMRQC_HUB_API_PORT", "8081"))
proxy_api_port = int(os.environ.get("CMRQC_PROXY_API_PORT", "8001"))
state = Path(os.environ.get("CMRQC_HUB_STATE") or root / ".hub").expanduser().resolve()
spawner = os.environ.get("CMRQC_HUB_SPAWNER", "local")
state.mkdir(parents=True, exist_ok=True)
config_dir = shipped_dir("voila_config")
notebooks = shipped_dir("notebooks")

# Network: only the proxy's public port is reachable, and by default only from this machine.
c.JupyterHub.bind_url = f"http://{ip}:{port}"
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{hub_port}"
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.pid_file = str(state / "jupyterhub-proxy.pid")

# State: sqlite, no other service.
c.JupyterHub.db_url = f"sqlite:///{state / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(state / "jupyterhub.pid")

# Login: users.json of the data root (salted hashes), lockout after repeated failures, 3 days.
c.JupyterHub.authenticator_class = "cmrqc_widgets.serve.hub.CMRQCAuthenticator"
c.CMRQCAuthenticator.data_root = str(root)
c.CMRQCAuthenticator.max_failures = int(os.environ.get("CMRQC_HUB_MAX_FAILURES", "5"))
c.CMRQCAuthenticator.lockout_seconds = float(os.environ.get("CMRQC_HUB_LOCKOUT_SECONDS", "900"))
c.JupyterHub.cookie_max_age_days = 3

# After login a reviewer lands on /user/<name>/voila/render/review.ipynb.
c.Spawner.notebook_dir = str(notebooks)
c.Spawner.default_url = f"/voila/render/{NOTEBOOK}"
c.Spawner.environment = {
    "CMRQC_ROOT": str(root),  # JUPYTERHUB_USER, the reviewer, is set by the hub itself
    # The offline `cmrqc` template and jupyter_server_config.json (Voilà settings, kernel culling).
    "JUPYTER_PATH": str(config_dir),
    "JUPYTER_CONFIG_PATH": str(config_dir),
}
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 90

if spawner == "simple":
    # Trial only: every reviewer's server runs as the hub's OS user, so only the application
    # keeps reviewers out of each other's folders.
    c.JupyterHub.spawner_class = "jupyterhub.spawner.SimpleLocalProcessSpawner"
    c.SimpleLocalProcessSpawner.home_dir_template = str(state / "home" / "{username}")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        c.Spawner.args = ["--allow-root"]
elif spawner == "local":
    # Production on one server: reviewer <name> is the system user <name>; the hub runs as root
    # and each server runs as its reviewer, so folder permissions (0700) separate reviewers.
    c.JupyterHub.spawner_class = "jupyterhub.spawner.LocalProcessSpawner"
else:
    raise ValueError(f"CMRQC_HUB_SPAWNER must be 'local' or 'simple', not {spawner!r}")

# An idle reviewer server (no kernel, no browser activity for an hour) stops itself
# (ServerApp.shutdown_no_activity_timeout in jupyter_server_config.json); a closed dashboard
# tab's kernel is culled after 10 minutes.
c.JupyterHub.shutdown_on_logout = True
