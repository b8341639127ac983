"""``python -m cmrqc_widgets.serve.app``: Voilà, serving its files compressed and cached.

What it promises over plain ``python -m voila`` (same command line, same settings):

- every text response (HTML, JavaScript, CSS, JSON) is gzip-compressed for browsers that accept
  it: the first load of the dashboard carries about a quarter of the bytes;
- files whose URL names their content (``?v=<hash>``: JupyterLab extensions and Voilà's
  templates) may be kept by the browser for a year without asking again, so a second visit
  reloads none of them. Other files keep Voilà's own caching (revalidated on each visit).

- with ``$CMRQC_VOILA_TOKEN`` set (``cmrqc serve`` always sets it), every page and kernel
  websocket needs that token (``?token=`` once, then the login cookie): a request without it is
  redirected to the login form and **starts no kernel**. The token comes through the environment,
  not the command line (which every user of the machine can read in ``ps``), and is removed from it
  before any kernel starts, so kernels never see it.

Stock Voilà 0.5 creates its web application before it applies ``Voila.tornado_settings``, so
``compress_response`` there has no effect; the two transforms are added here, to the running
application, before it starts listening.
"""

from __future__ import annotations

import os
from typing import Any

from tornado import httputil
from tornado.web import GZipContentEncoding, OutputTransform
from traitlets import Unicode, default
from voila.app import Voila

from .voila import TOKEN_ENV

__all__ = ["CachedVoila", "HashedFilesCached", "main"]

ONE_YEAR = 365 * 24 * 3600
STATIC = ("/voila/labextensions/", "/voila/templates/", "/voila/static/")


class HashedFilesCached(OutputTransform):
    """Long browser caching for successful GETs of files whose URL carries their hash (``?v=``)."""

    def __init__(self, request: httputil.HTTPServerRequest) -> None:
        self._hashed = (
            request.method == "GET"
            and "v" in request.query_arguments
            and any(part in request.path for part in STATIC)
        )

    def transform_first_chunk(
        self, status_code: int, headers: httputil.HTTPHeaders, chunk: bytes, finishing: bool
    ) -> tuple[int, httputil.HTTPHeaders, bytes]:
        if self._hashed and status_code in (200, 304):
            headers["Cache-Control"] = f"public, max-age={ONE_YEAR}, immutable"
            headers.pop("Pragma", None)
            headers.pop("Expires", None)
        return status_code, headers, chunk


class CachedVoila(Voila):
    """Voilà with gzip, long caching of hashed files and a token from the environment (module docstring)."""

    @default("token")
    def _token_from_environment(self) -> str | None:
        # Popped: the kernels, started later with a copy of this environment, never see it.
        return os.environ.pop(TOKEN_ENV, None) or None

    def launch_browser(self) -> None:
        """Open the dashboard with the token (Voilà's own opener leaves it out: a login form).

        As Jupyter does, the browser gets a private (0600) redirect file, so the token is never on
        the browser's command line.
        """
        import tempfile
        import threading
        import webbrowser
        from urllib.parse import urlencode

        from jupyter_server.utils import url_path_join

        token = getattr(self.identity_provider, "token", "") if hasattr(self, "identity_provider") else ""
        if not token:
            return super().launch_browser()
        try:
            browser = webbrowser.get(self.browser or None)
        except webbrowser.Error as exc:
            self.log.warning("No web browser found: %s.", exc)
            return None
        url = url_path_join(self.connection_url, self.base_url) + "?" + urlencode({"token": token})
        fd, path = tempfile.mkstemp(suffix=".html")  # 0600
        with open(fd, "w", encoding="utf-8") as out:
            out.write(f'<!doctype html><meta http-equiv="refresh" content="0;url={url}">')
        threading.Thread(target=lambda: browser.open(f"file://{path}", new=self.webbrowser_open_new)).start()
        return None

    unix_socket = Unicode(
        "",
        config=True,
        help="Listen on this Unix socket (created 0600) instead of a TCP port: behind the hub, only "
        "the reviewer's own login proxy can reach the dashboard, not other accounts of the machine.",
    )

    def listen(self) -> Any:
        self.app.add_transform(GZipContentEncoding)
        self.app.add_transform(HashedFilesCached)
        if not self.unix_socket:
            return super().listen()
        from tornado.httpserver import HTTPServer
        from tornado.ioloop import IOLoop
        from tornado.netutil import bind_unix_socket

        server = HTTPServer(self.app)
        server.add_socket(bind_unix_socket(self.unix_socket, mode=0o600))
        self.log.info("Voilà is running on the Unix socket %s", self.unix_socket)
        self.ioloop = IOLoop.current()
        try:
            self.ioloop.start()
        except KeyboardInterrupt:
            self.log.info("Stopping...")
        finally:
            self.stop()
        return None


main = CachedVoila.launch_instance

if __name__ == "__main__":
    main()
