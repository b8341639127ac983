"""JupyterHub login for reviewers: the credentials of ``<data root>/users.json``.

Use it from ``jupyterhub_config.py`` (``voila_config/jupyterhub_config.py`` does)::

    c.JupyterHub.authenticator_class = "cmrqc_widgets.serve.hub.CMRQCAuthenticator"
    c.CMRQCAuthenticator.data_root = "/srv/cmrqc"      # default: $CMRQC_ROOT

Passwords are checked against the salted hashes written by ``cmrqc user add``; the file is
re-read at every login, so a reviewer added while the hub runs can log in at once. A legacy
plaintext file refuses every login and logs the ``cmrqc user migrate`` hint. After
``max_failures`` wrong passwords within ``failure_window`` seconds a user is locked out for
``lockout_seconds``: the login form just fails and the hub log says why.

Only the ``hub`` extra installs :mod:`jupyterhub`; nothing else in the package imports this module.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from jupyterhub.auth import Authenticator
from traitlets import Bool, Float, Integer, Unicode, default

from ..errors import AuthError, InvalidNameError
from ..names import check_username, resolve_root
from .auth import LoginThrottle, check_login, load_users

__all__ = ["CMRQCAuthenticator"]


class CMRQCAuthenticator(Authenticator):
    """Authenticate reviewers against the hashed ``users.json`` of the cmrqc data root.

    Every user listed in ``users.json`` is allowed (JupyterHub >= 5 needs an explicit allow
    rule); ``allowed_users`` and ``allow_all`` still work as in any authenticator.
    User names are used exactly as written in ``users.json`` (no lower-casing), because they
    name the reviewer's folder ``users/<name>/``.
    """

    data_root = Unicode(
        help="Data root holding users.json and users/<name>/ (default: $CMRQC_ROOT, else ~/cmrqc).",
    ).tag(config=True)

    max_failures = Integer(5, help="Failed logins that lock a user out.").tag(config=True)
    failure_window = Float(900, help="Seconds over which failed logins are counted.").tag(config=True)
    lockout_seconds = Float(900, help="Seconds a locked-out user must wait.").tag(config=True)

    # users.json is itself the allow list, so the "no allow config" warning would be wrong.
    any_allow_config = Bool(True).tag(config=True)

    @default("data_root")
    def _default_data_root(self) -> str:
        return str(resolve_root(os.environ.get("CMRQC_ROOT") or None))

    @property
    def throttle(self) -> LoginThrottle:
        """The in-memory lockout book (one per hub process)."""
        if getattr(self, "_throttle", None) is None:
            self._throttle = LoginThrottle(
                max_failures=self.max_failures, window=self.failure_window, lockout=self.lockout_seconds
            )
        return self._throttle

    def normalize_username(self, username: str) -> str:
        """Apply ``username_map`` only: the name must match the reviewer's folder exactly."""
        return self.username_map.get(username, username)

    def _known_users(self) -> set[str]:
        try:
            return set(load_users(self.data_root))
        except AuthError as exc:
            self.log.error("%s", exc)
            return set()

    def check_allowed(self, username: str, authentication: dict[str, Any] | None = None) -> bool:
        """Allow everyone in ``users.json`` (plus ``allowed_users``, or anyone if ``allow_all``)."""
        if self.allow_all or username in self.allowed_users:
            return True
        return username in self._known_users()

    async def authenticate(self, handler: Any, data: dict[str, str]) -> str | None:
        """Return the user name if the password matches its hash, else None."""
        username = (data or {}).get("username", "")
        password = (data or {}).get("password", "")
        try:
            check_username(username)
        except InvalidNameError:
            self.log.warning("Login refused: user name %r is not allowed.", username)
            return None
        if self.throttle.is_locked(username):
            self.log.warning(
                "Login refused: user %r is locked out for %.0f more seconds after repeated failed logins.",
                username,
                self.throttle.remaining(username),
            )
            return None
        try:
            # scrypt takes tens of milliseconds: keep it off the hub's event loop.
            ok = await asyncio.to_thread(check_login, self.data_root, username, password)
        except AuthError as exc:
            self.log.error("Login refused for %r: %s", username, exc)
            return None
        if not ok:
            self.throttle.failure(username)
            if self.throttle.is_locked(username):
                self.log.warning(
                    "User %r is now locked out for %.0f seconds after %d failed logins.",
                    username,
                    self.lockout_seconds,
                    self.max_failures,
                )
            else:
                self.log.warning("Login failed for %r: wrong user name or password.", username)
            return None
        self.throttle.success(username)
        return username
