"""Handing work from background threads to the kernel's main thread, where traits may change.

Widgets and traits are not thread-safe: a worker thread (prefetch, triage) must never touch them.
:func:`kernel_scheduler` gives such a thread a way to run a function on the kernel's own event loop,
between two messages of the browser.

Also the kernel's side of "one live dashboard per reviewer": every review screen registers itself
(:func:`register_screen`); when the reviewer opens the dashboard in another tab, the server
(:class:`~cmrqc_widgets.serve.kernels.ClosingKernelManager`) runs :func:`hand_over` in the older
tab's kernel — server-side code, never from the browser — then shuts that kernel down.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import weakref
from collections.abc import Callable
from typing import Any

__all__ = ["REPLACED", "hand_over", "kernel_scheduler", "quiet_shutdown", "register_screen"]

REPLACED = (
    "This review continues in another tab: your decisions here are saved; close this tab "
    "or reload it to continue here."
)
"""What an older tab shows once a newer tab of the same reviewer took over."""

_screens: weakref.WeakSet[Any] = weakref.WeakSet()


def register_screen(screen: Any) -> None:
    """Let :func:`hand_over` reach ``screen`` (a review screen with ``state`` and ``hotkeys``)."""
    _screens.add(screen)


def hand_over(message: str = REPLACED) -> int:
    """End every review screen of this kernel: save what is pending, then show ``message``.

    Each screen's typed comment and its dataset are saved first; then its page shows ``message``
    in place of the controls (:attr:`~cmrqc_widgets.widgets.hotkeys.KeyBridge.ended`). Returns the
    number of screens told.
    """
    told = 0
    for screen in list(_screens):
        state = getattr(screen, "state", None)
        if state is not None:
            with contextlib.suppress(Exception):
                state.commit_comment()
            with contextlib.suppress(Exception):
                if state.dataset_obj is not None:
                    state.dataset_obj.flush()
        with contextlib.suppress(Exception):
            screen.hotkeys.ended = message
            told += 1
    return told


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
