"""Serving the dashboard: the Voilà launcher, reviewers' credentials and the JupyterHub authenticator.

Modules
-------
voila  where the shipped notebook and settings are, and the Voilà command line and environment
auth   ``users.json``: salted scrypt hashes, login checks and throttling
hub    :class:`~cmrqc_widgets.serve.hub.CMRQCAuthenticator` for JupyterHub (imports ``jupyterhub``,
       so it is not imported here)
"""

from .voila import NOTEBOOK, find_notebook, shipped_dir

__all__ = ["NOTEBOOK", "find_notebook", "shipped_dir"]
