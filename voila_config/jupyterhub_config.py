"""JupyterHub configuration for cmrqc_widgets: reviewers log in and land on the review dashboard.

Run it with ``cmrqc hub`` (a local trial) or ``jupyterhub -f voila_config/jupyterhub_config.py``.
Settings come from the environment, so one file serves the trial and a production server:

==========================  =================================================================
``CMRQC_ROOT``              data root: ``users.json`` and ``users/<name>/`` (default ~/cmrqc)
``CMRQC_IMAGE_ROOTS``       extra folders (``:``-separated) that may hold patient folders
``CMRQC_HUB_IP``            public address (default ``127.0.0.1``; ``0.0.0.0`` behind TLS only)
``CMRQC_HUB_PORT``          public port (default 8000)
``CMRQC_HUB_API_PORT``      hub's internal port, always on 127.0.0.1 (default 8081)
``CMRQC_PROXY_API_PORT``    proxy's API port, always on 127.0.0.1 (default 8001)
``CMRQC_HUB_STATE``         folder for the sqlite database and cookie secret (default <root>/.hub)
``CMRQC_HUB_SPAWNER``       ``local`` (default: one real OS user per reviewer, production) or
                            ``simple`` (everyone runs as the hub's user: a trial; ``cmrqc hub``)
``CMRQC_HUB_CULL_TIMEOUT``  seconds without browser traffic before a server stops (default 3600)
``CMRQC_HUB_CULL_MAX_AGE``  seconds after which a server stops whatever its activity (default 12 h)
``CMRQC_HUB_CULL_EVERY``    seconds between culler checks (default 300)
==========================  =================================================================

See ``voila_config/README.md`` for the two production set-ups.
"""

# ruff: noqa: F821  (`c` is injected by JupyterHub's config loader)

import os
import shutil
import sys
from pathlib import Path

from cmrqc_widgets.names import resolve_root
from cmrqc_widgets.serve import shipped_dir

root = resolve_root(os.environ.get("CMRQC_ROOT") or None)
ip = os.environ.get("CMRQC_HUB_IP", "127.0.0.1")
port = int(os.environ.get("CMRQC_HUB_PORT", "8000"))
hub_port = int(os.environ.get("CMRQC_HUB_API_PORT", "8081"))
proxy_api_port = int(os.environ.get("CMRQC_PROXY_API_PORT", "8001"))
state = Path(os.environ.get("CMRQC_HUB_STATE") or root / ".hub").expanduser().resolve()
spawner = os.environ.get("CMRQC_HUB_SPAWNER", "local")
config_dir = shipped_dir("voila_config")

# Network: only the proxy's public port is reachable, and by default only from this machine.
c.JupyterHub.bind_url = f"http://{ip}:{port}"
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{hub_port}"
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.pid_file = str(state / "jupyterhub-proxy.pid")
# Every executable the hub starts by its absolute path: the hub's PATH does not matter.
c.ConfigurableHTTPProxy.command = [shutil.which("configurable-http-proxy") or "configurable-http-proxy"]

# State: sqlite, no other service. The folder is the hub's alone (0700) and so are the cookie secret
# (JupyterHub writes it 0600) and the database (created 0600 here; sqlite gives its journal the
# same mode): they hold every session's key, user names, tokens' hashes.
state.mkdir(parents=True, exist_ok=True)
os.chmod(state, 0o700)
database = state / "jupyterhub.sqlite"
os.close(os.open(database, os.O_CREAT | os.O_WRONLY, 0o600))
os.chmod(database, 0o600)
c.JupyterHub.db_url = f"sqlite:///{database}"
c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(state / "jupyterhub.pid")

# Login: users.json of the data root (salted hashes), lockout after repeated failures, 3 days.
c.JupyterHub.authenticator_class = "cmrqc_widgets.serve.hub.CMRQCAuthenticator"
c.CMRQCAuthenticator.data_root = str(root)
c.CMRQCAuthenticator.max_failures = int(os.environ.get("CMRQC_HUB_MAX_FAILURES", "5"))
c.CMRQCAuthenticator.lockout_seconds = float(os.environ.get("CMRQC_HUB_LOCKOUT_SECONDS", "900"))
c.CMRQCAuthenticator.throttle_file = str(state / "login-throttle.json")  # survives restarts
c.JupyterHub.cookie_max_age_days = 3

# A reviewer's server is the standalone Voilà dashboard behind jupyter-standaloneproxy (see
# cmrqc_widgets.serve.spawner): widgets only, no code from the browser, no Jupyter API, never root.
# After login the hub sends a reviewer to /user/<name>/, which is the dashboard; a member of the
# leads group of users.json finds there the list of lead.ipynb and review.ipynb instead.
c.Spawner.environment = {
    "CMRQC_ROOT": str(root),  # JUPYTERHUB_USER, the reviewer, is set by the hub itself
    # The offline `cmrqc` template and voila.json.
    "JUPYTER_PATH": str(config_dir),
    "JUPYTER_CONFIG_PATH": str(config_dir),
}
if os.environ.get("CMRQC_IMAGE_ROOTS"):
    # Extra folders patient folders may be in (cmrqc_widgets.cases.roots); the data root always is.
    c.Spawner.environment["CMRQC_IMAGE_ROOTS"] = os.environ["CMRQC_IMAGE_ROOTS"]
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 90

if spawner == "simple":
    # Trial only: every reviewer's server runs as the hub's OS user (never root), so only the
    # application keeps reviewers out of each other's folders.
    c.JupyterHub.spawner_class = "cmrqc_widgets.serve.spawner.TrialSpawner"
    c.TrialSpawner.home_dir_template = str(state / "home" / "{username}")
elif spawner == "local":
    # Production on one server: reviewer <name> is the system user <name>; the hub runs as root
    # and each server runs as its reviewer, so folder permissions (0700) separate reviewers.
    c.JupyterHub.spawner_class = "cmrqc_widgets.serve.spawner.ReviewerSpawner"
else:
    raise ValueError(f"CMRQC_HUB_SPAWNER must be 'local' or 'simple', not {spawner!r}")

# Idle servers stop: the hub's proxy records the browser's real traffic (the standalone proxy's
# own "I am active" pings are off), and jupyterhub-idle-culler stops a server idle for
# CMRQC_HUB_CULL_TIMEOUT seconds, or older than CMRQC_HUB_CULL_MAX_AGE whatever its activity.
# Inside a server, Voilà culls the kernel of a closed tab after 10 minutes (voila.json).
cull_timeout = int(os.environ.get("CMRQC_HUB_CULL_TIMEOUT", "3600"))
cull_max_age = int(os.environ.get("CMRQC_HUB_CULL_MAX_AGE", str(12 * 3600)))
cull_every = int(os.environ.get("CMRQC_HUB_CULL_EVERY", "300"))
c.JupyterHub.last_activity_interval = min(300, cull_every)
c.JupyterHub.load_roles = [
    {
        "name": "idle-culler",
        "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
        "services": ["idle-culler"],
    }
]
c.JupyterHub.services = [
    {
        "name": "idle-culler",
        "command": [
            sys.executable,
            "-m",
            "jupyterhub_idle_culler",
            f"--timeout={cull_timeout}",
            f"--max-age={cull_max_age}",
            f"--cull-every={cull_every}",
        ],
    }
]
c.JupyterHub.shutdown_on_logout = True
