"""Serving the dashboard: the Voilà launcher, reviewers' credentials and the JupyterHub authenticator.

Modules
-------
voila     where the shipped notebook and settings are, the Voilà command lines and environment
auth      ``users.json``: salted scrypt hashes, password rules, login checks
accounts  production (a): user folders given to system users, the ``cmrqc-leads`` group
throttle  failed logins per user and client address, exponential back-off, kept on disk
hub       :class:`~cmrqc_widgets.serve.hub.CMRQCAuthenticator` for JupyterHub and a logout that
          ends the session (imports ``jupyterhub``, so it is not imported here)
spawner   reviewers' servers: the standalone Voilà dashboard behind the hub's login, never root
          (imports ``jupyterhub``)
"""

from .voila import NOTEBOOK, find_notebook, shipped_dir

__all__ = ["NOTEBOOK", "find_notebook", "shipped_dir"]
