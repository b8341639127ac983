"""``python -m cmrqc_widgets.serve.app``: Voilà, serving its files compressed and cached.

What it promises over plain ``python -m voila`` (same command line, same settings):

- every text response (HTML, JavaScript, CSS, JSON) is gzip-compressed for browsers that accept
  it: the first load of the dashboard carries about a quarter of the bytes;
- files whose URL names their content (``?v=<hash>``: JupyterLab extensions and Voilà's
  templates) may be kept by the browser for a year without asking again, so a second visit
  reloads none of them. Other files keep Voilà's own caching (revalidated on each visit).

Stock Voilà 0.5 creates its web application before it applies ``Voila.tornado_settings``, so
``compress_response`` there has no effect; the two transforms are added here, to the running
application, before it starts listening.
"""

from __future__ import annotations

from typing import Any

from tornado import httputil
from tornado.web import GZipContentEncoding, OutputTransform
from voila.app import Voila

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
    """Voilà with gzip and long caching of hashed files (see the module docstring)."""

    def listen(self) -> Any:
        self.app.add_transform(GZipContentEncoding)
        self.app.add_transform(HashedFilesCached)
        return super().listen()


main = CachedVoila.launch_instance

if __name__ == "__main__":
    main()
