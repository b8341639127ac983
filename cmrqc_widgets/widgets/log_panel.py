"""The visible log: exceptions of callbacks and the package's warnings land here, not in the void.

JupyterLab and Voilà swallow a callback's traceback; every callback of the review screen is wrapped
by :meth:`LogPanel.guard`, so the reviewer (and whoever they send a screenshot to) sees it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

from ipywidgets import HTML, Layout, Output, VBox


class LogPanel(VBox):
    """Visible log: exceptions of callbacks and warnings of the package land here, not in the void.

    Attributes
    ----------
    output : ipywidgets.Output
    """

    def __init__(self, **kwargs: Any) -> None:
        self.output = Output(layout=Layout(max_height="160px", overflow="auto"))
        self.output.add_class("cmrqc-log")
        self._handler = _OutputHandler(self.output)
        logging.getLogger("cmrqc_widgets").addHandler(self._handler)
        super().__init__([HTML("<b>Log</b>"), self.output], **kwargs)

    def guard(self, function: Callable[..., Any]) -> Callable[..., Any]:
        """Wrap a callback so its exception is shown in the log (in a kernel) instead of vanishing."""
        return self.output.capture()(function)

    def detach(self) -> None:
        """Stop receiving the package's log records (called when the widget closes)."""
        logging.getLogger("cmrqc_widgets").removeHandler(self._handler)


class _OutputHandler(logging.Handler):
    def __init__(self, output: Output) -> None:
        super().__init__(logging.WARNING)
        self.output = output
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self.output.append_stderr(self.format(record) + "\n")
