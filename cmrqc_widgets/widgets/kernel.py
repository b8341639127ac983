"""Handing work from background threads to the kernel's main thread, where traits may change.

Widgets and traits are not thread-safe: a worker thread (prefetch, triage) must never touch them.
:func:`kernel_scheduler` gives such a thread a way to run a function on the kernel's own event loop,
between two messages of the browser.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable

__all__ = ["kernel_scheduler", "quiet_shutdown"]


def kernel_scheduler() -> Callable[[Callable[[], None], float], None] | None:
    """``schedule(function, delay)`` running ``function`` on the kernel's main thread, or None.

    None outside a running IPython kernel (scripts, tests): results are then applied by
    :meth:`~cmrqc_widgets.widgets.triage.Triage.apply`.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    loop = getattr(getattr(shell, "kernel", None), "io_loop", None)
    if loop is None:
        return None

    def schedule(function: Callable[[], None], delay: float = 0.0) -> None:
        # add_callback is the one thread-safe entry into the loop; call_later must run inside it.
        if delay > 0:
            loop.add_callback(loop.call_later, delay, function)
        else:
            loop.add_callback(function)

    return schedule


class _ClosedSocketFilter(logging.Filter):
    """Drops ipykernel's "Exception in message handler" record whose cause is a closed ZMQ socket."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (type(error).__name__ == "ZMQError" and getattr(error, "errno", None) == errno.ENOTSOCK)


def quiet_shutdown() -> bool:
    """Silence the ZMQ traceback a preheated Voilà kernel prints when the server stops.

    A preheated kernel no reviewer opened is shut down while its cell still waits in
    ``voila.utils.wait_for_request``; ipykernel then sends that cell's reply on a closed socket and
    logs a ``ZMQError: Socket operation on non-socket`` traceback on every stop of ``cmrqc serve``.
    Only that record is dropped. Returns False outside a kernel.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    log = getattr(getattr(get_ipython(), "kernel", None), "log", None)
    if not isinstance(log, logging.Logger):
        return False
    if not any(isinstance(f, _ClosedSocketFilter) for f in log.filters):
        log.addFilter(_ClosedSocketFilter())
    return True
