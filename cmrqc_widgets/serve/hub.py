"""JupyterHub login for reviewers: the credentials of ``<data root>/users.json``.

Use it from ``jupyterhub_config.py`` (``voila_config/jupyterhub_config.py`` does)::

    c.JupyterHub.authenticator_class = "cmrqc_widgets.serve.hub.CMRQCAuthenticator"
    c.CMRQCAuthenticator.data_root = "/srv/cmrqc"      # default: $CMRQC_ROOT

Passwords are checked against the salted hashes written by ``cmrqc user add``; the file is
re-read at every login, so a reviewer added while the hub runs can log in at once. A legacy
plaintext file refuses every login and logs the ``cmrqc user migrate`` hint. Failed
logins are throttled per user and per client address with exponential back-off, kept across hub
restarts (:mod:`cmrqc_widgets.serve.throttle`): the login form just fails and the hub log says why.

Only the ``hub`` extra installs :mod:`jupyterhub`; nothing else in the package imports this module.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from jupyterhub.auth import Authenticator
from jupyterhub.handlers.login import LoginHandler, LogoutHandler
from jupyterhub.utils import new_token
from traitlets import Bool, Float, Integer, Unicode, default

from ..errors import AuthError, InvalidNameError
from ..names import check_username, resolve_root
from .auth import check_login, load_users
from .throttle import LoginThrottle

__all__ = ["CMRQCAuthenticator", "SessionEndingLogoutHandler"]


class SessionEndingLogoutHandler(LogoutHandler):
    """Logout that ends the session on the server, not only in the browser.

    JupyterHub's logout clears the cookie in the browser, but a copy of it (stolen, or left in
    another browser) stays valid for days. Here the user's cookie id is replaced, so every hub
    cookie issued so far is refused, and the user's OAuth tokens (what the reviewer's server cookie
    holds) are deleted.
    """

    async def default_handle_logout(self) -> None:
        user = self.current_user
        await super().default_handle_logout()
        if user is None:
            return
        user.orm_user.cookie_id = new_token()
        for token in list(user.orm_user.api_tokens):
            if token.oauth_client_id:
                self.db.delete(token)
        self.db.commit()
        self.log.info("Session of %s ended: earlier cookies and server tokens are refused.", user.name)


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

    max_failures = Integer(5, help="Failed logins of a user from one address before a wait.").tag(config=True)
    failure_window = Float(900, help="Seconds after which failed logins are forgotten.").tag(config=True)
    lockout_seconds = Float(900, help="Longest wait, doubling from 30 s at each failure.").tag(config=True)
    throttle_file = Unicode(
        "", help="JSON file keeping failed logins across hub restarts (the hub's state folder)."
    ).tag(config=True)

    # users.json is itself the allow list, so the "no allow config" warning would be wrong.
    any_allow_config = Bool(True).tag(config=True)

    @default("data_root")
    def _default_data_root(self) -> str:
        return str(resolve_root(os.environ.get("CMRQC_ROOT") or None))

    @property
    def throttle(self) -> LoginThrottle:
        """The book of failed logins, per user and client address (kept in ``throttle_file``)."""
        if getattr(self, "_throttle", None) is None:
            self._throttle = LoginThrottle(
                max_failures=self.max_failures,
                window=self.failure_window,
                lockout=self.lockout_seconds,
                path=self.throttle_file or None,
            )
        return self._throttle

    def get_handlers(self, app: Any) -> list[tuple[str, Any]]:
        """The login form, and a logout that ends the session server-side."""
        return [("/login", LoginHandler), ("/logout", SessionEndingLogoutHandler)]

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
        address = getattr(getattr(handler, "request", None), "remote_ip", None) or "unknown"
        wait = self.throttle.wait(username, address)
        if wait > 0:
            self.log.warning(
                "Login refused: user %r from %s is locked out for %.0f more seconds after failed logins.",
                username,
                address,
                wait,
            )
            return None
        try:
            # scrypt takes tens of milliseconds: keep it off the hub's event loop.
            ok = await asyncio.to_thread(check_login, self.data_root, username, password)
        except AuthError as exc:
            self.log.error("Login refused for %r: %s", username, exc)
            return None
        if not ok:
            self.throttle.failure(username, address)
            wait = self.throttle.wait(username, address)
            if wait > 0:
                self.log.warning(
                    "User %r from %s is now locked out for %.0f seconds after failed logins.",
                    username,
                    address,
                    wait,
                )
            else:
                self.log.warning("Login failed for %r: wrong user name or password.", username)
            return None
        self.throttle.success(username, address)
        return username
