"""Handing work from background threads to the kernel's main thread, where traits may change.

Widgets and traits are not thread-safe: a worker thread (prefetch, triage) must never touch them.
:func:`kernel_scheduler` gives such a thread a way to run a function on the kernel's own event loop,
between two messages of the browser.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["kernel_scheduler"]


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
