"""The Voilà server's kernel manager: a closed tab's kernel is shut down within seconds.

Guarantees (``cmrqc serve`` sets ``VoilaConfiguration.multi_kernel_manager_class`` to
:class:`ClosingKernelManager`):

- a kernel whose last websocket closed (tab closed, browser killed, laptop lid shut) and that no
  page reconnected to within ``disconnect_grace`` seconds (5 s) is shut down: the widget manager
  reconnects after a network blip well within that, and a reload gets a fresh kernel anyway;
- a kernel handed to a request that never opens its websocket (``curl /``, a crawler, a page
  abandoned while loading) is shut down once it has been idle ``unclaimed_timeout`` seconds (120 s
  in ``voila.json``: generous, because on a swamped server a page may take half a minute to load
  its scripts before it connects, and its kernel must not be shut down under it);
- kernels waiting in Voilà's preheated pool are never touched by the above;
- **at most one live dashboard kernel per reviewer** (``one_tab``, on): a server serves one
  reviewer (``cmrqc serve``, or a reviewer's own server behind the hub), so when a page's kernel
  connects for the first time, every older page's kernel is *replaced*: it runs
  :func:`~cmrqc_widgets.widgets.kernel.hand_over` (the comment being typed and the dataset are
  saved, and the older tab shows "This review continues in another tab ..." with every control
  disabled), then it is shut down. The newest tab wins; a reconnect after a network blip is not a
  new tab. The hand-over code is a constant run by the server over its own connection to the
  kernel; browsers still cannot execute anything (Voilà's ``allowed_message_types``);
- **a preheated spare is alive when a page gets it**: before Voilà hands the next spare to a
  page, a spare whose process died, or that was restarted since it ran the notebook (its widgets
  are gone), is dropped and shut down, and a fresh one is started for that page. (Voilà builds its
  pool manager as a subclass of this class; :meth:`__init_subclass__` wraps its hand-out.)

Voilà's own ``beforeunload`` beacon (``POST /voila/api/shutdown/<id>``) shuts a kernel down as soon
as it gets through; our template gives it the ``_xsrf`` cookie it needs. This manager is the
backstop for every close the beacon misses. The idle culler (600 s) stays as a last resort.

Every shutdown of a served kernel first lets it handle what its page sent last (at most
``drain_timeout`` seconds): the beacon often arrives before the page's final widget messages (the
comment typed just before the tab closed), and a kernel handles a shutdown request, which comes on
its control channel, ahead of the messages waiting on its shell channel. So the shutdown waits for
the page's websocket to close (every message it sent has then reached the kernel's shell queue) and
for the reply to a ``kernel_info_request`` queued behind them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable, Coroutine
from typing import Any

from jupyter_core.utils import ensure_async
from jupyter_server._tz import utcnow
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from traitlets import Bool, Float

__all__ = ["HANDOVER_CODE", "ClosingKernelManager"]

HANDOVER_CODE = "from cmrqc_widgets.widgets.kernel import hand_over\nhand_over()\n"
"""What the server runs in an older tab's kernel before shutting it down (no value from a browser)."""


def _own_client(kernel: Any) -> Any:
    """A client of ``kernel`` with a session of its own.

    ``kernel.client()`` reuses the kernel manager's session, whose id is the ZMQ identity of the
    client's shell socket: a second client with the same identity makes the kernel's socket drop
    messages of the first (seen: a page's pending request never ran). A fresh session id avoids it.
    """
    from jupyter_client.session import Session

    session = Session(
        config=kernel.session.config, key=kernel.session.key, signature_scheme=kernel.session.signature_scheme
    )
    return kernel.client(session=session)


DRAIN_QUIET = 0.3
"""Seconds without kernel activity after which a closing page's messages count as handled."""


class ClosingKernelManager(AsyncMappingKernelManager):
    """``AsyncMappingKernelManager`` that shuts down kernels no page is connected to."""

    disconnect_grace = Float(
        5.0, config=True, help="Seconds a kernel may stay without websocket after its last one closed."
    )
    unclaimed_timeout = Float(
        120.0, config=True, help="Seconds a served kernel may stay idle without ever being connected to."
    )
    check_interval = Float(5.0, config=True, help="Seconds between checks for never-connected kernels.")
    drain_timeout = Float(
        3.0, config=True, help="Seconds a shutdown waits for the kernel to handle its page's last messages."
    )
    one_tab = Bool(
        True,
        config=True,
        help="At most one live dashboard kernel: a page connecting replaces the older pages' kernels.",
    )
    handover_timeout = Float(
        10.0,
        config=True,
        help="Seconds an older tab's kernel may take to save and say so before it is shut down.",
    )
    handover_linger = Float(
        1.0,
        config=True,
        help="Seconds between the hand-over's reply and the shutdown (the message reaches the tab).",
    )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Wrap the hand-out of a preheated spare (Voilà's subclass) so a dead spare is never handed out."""
        super().__init_subclass__(**kwargs)
        handout = cls.__dict__.get("get_rendered_notebook")
        if handout is not None and not getattr(handout, "checks_spares", False):
            cls.get_rendered_notebook = _checking_spares(handout)  # type: ignore[attr-defined]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._connected_once: set[str] = set()
        self._pending: dict[str, asyncio.TimerHandle] = {}
        self._unclaimed_since: dict[str, float] = {}
        self._watcher: asyncio.Task | None = None
        self._restarted: set[str] = set()
        self._replacing: dict[str, asyncio.Task] = {}

    async def start_kernel(self, *args: Any, **kwargs: Any) -> str:
        kernel_id = await super().start_kernel(*args, **kwargs)
        if self._watcher is None and self.unclaimed_timeout > 0:
            self._watcher = asyncio.get_running_loop().create_task(self._watch_unclaimed())
        with contextlib.suppress(Exception):
            # An auto-restarted kernel lost the widgets its notebook built: never a usable spare.
            self.add_restart_callback(kernel_id, lambda: self._restarted.add(kernel_id), "restart")
        return kernel_id

    def notify_connect(self, kernel_id: str) -> None:
        first = kernel_id not in self._connected_once
        super().notify_connect(kernel_id)
        self._connected_once.add(kernel_id)
        if first and self.one_tab:
            with contextlib.suppress(RuntimeError):  # no running loop: shutting down anyway
                loop = asyncio.get_running_loop()
                for older in sorted(self._connected_once - {kernel_id, *self._replacing}):
                    if older in self:
                        self._replacing[older] = loop.create_task(self._replace(older, kernel_id))
        self._unclaimed_since.pop(kernel_id, None)
        pending = self._pending.pop(kernel_id, None)
        if pending is not None:
            pending.cancel()

    def notify_disconnect(self, kernel_id: str) -> None:
        super().notify_disconnect(kernel_id)
        if kernel_id in self and self._kernel_connections.get(kernel_id, 0) <= 0:
            with contextlib.suppress(RuntimeError):  # no running loop: shutting down anyway
                loop = asyncio.get_running_loop()
                old = self._pending.pop(kernel_id, None)
                if old is not None:
                    old.cancel()
                self._pending[kernel_id] = loop.call_later(
                    self.disconnect_grace,
                    lambda: loop.create_task(self._shutdown_if_abandoned(kernel_id, "its page closed")),
                )

    async def shutdown_kernel(self, kernel_id: str, *args: Any, **kwargs: Any) -> None:
        pending = self._pending.pop(kernel_id, None)
        if pending is not None:
            pending.cancel()
        self._connected_once.discard(kernel_id)
        self._unclaimed_since.pop(kernel_id, None)
        self._restarted.discard(kernel_id)
        if kernel_id in self and not kwargs.get("now"):
            await self._drain(kernel_id)
        return await super().shutdown_kernel(kernel_id, *args, **kwargs)

    async def _drain(self, kernel_id: str) -> None:
        """Return once the kernel has handled every message its closing page sent (or time is up)."""
        deadline = time.monotonic() + self.drain_timeout
        # A replaced kernel's tab stays open (it shows why it stopped): no close to wait for.
        while (
            kernel_id not in self._replacing
            and self._kernel_connections.get(kernel_id, 0) > 0
            and time.monotonic() < deadline
        ):
            await asyncio.sleep(0.05)
        kernel = self.get_kernel(kernel_id)
        client = _own_client(kernel)
        try:
            client.start_channels(shell=True, iopub=False, stdin=False, hb=False, control=False)
            await client.kernel_info(reply=True, timeout=max(deadline - time.monotonic(), 0.1))
        except Exception as err:  # a dead or stuck kernel: shut it down anyway
            self.log.info("Kernel %s did not answer before its shutdown: %r", kernel_id, err)
            return
        finally:
            client.stop_channels()
        # The kernel's socket serves its peers in turn, not in order of arrival, so the page's
        # messages (another peer) may come after our request: wait until the kernel has been idle,
        # with no activity seen on its output channel, for DRAIN_QUIET seconds.
        await asyncio.sleep(DRAIN_QUIET)
        while time.monotonic() < deadline:
            idle = getattr(kernel, "execution_state", "idle") != "busy"
            last = getattr(kernel, "last_activity", None)
            quiet = last is None or (utcnow() - last).total_seconds() >= DRAIN_QUIET
            if idle and quiet:
                return
            await asyncio.sleep(0.05)

    # ------------------------------------------------------------------------------------------
    async def _replace(self, kernel_id: str, newer: str) -> None:
        """The older tab's kernel: hand over (save, say so), then shut down."""
        self.log.info(
            "Kernel %s is replaced by %s: the reviewer opened the dashboard in another tab.", kernel_id, newer
        )
        try:
            await asyncio.wait_for(self._hand_over(kernel_id), self.handover_timeout)
        except Exception as exc:  # a busy or dead kernel: it goes anyway
            self.log.warning("Kernel %s did not hand over (%r); shutting it down anyway.", kernel_id, exc)
        try:
            with contextlib.suppress(KeyError, RuntimeError):  # already gone (its tab closed)
                if kernel_id in self:
                    await self.shutdown_kernel(kernel_id)
        finally:
            self._replacing.pop(kernel_id, None)

    async def _hand_over(self, kernel_id: str) -> None:
        client = _own_client(self.get_kernel(kernel_id))
        client.start_channels()
        try:
            msg_id = client.execute(HANDOVER_CODE, silent=True, store_history=False, allow_stdin=False)
            while (await client.get_shell_msg())["parent_header"].get("msg_id") != msg_id:
                pass
            await asyncio.sleep(self.handover_linger)  # the widget update travels to the tab
        finally:
            client.stop_channels()

    async def _spare_alive(self, kernel_id: str) -> bool:
        if kernel_id not in self or kernel_id in self._restarted:
            return False
        try:
            return bool(await ensure_async(self.get_kernel(kernel_id).is_alive()))
        except Exception:
            return False

    async def drop_dead_spares(self, notebook_name: str) -> int:
        """Drop the dead or restarted spares of ``notebook_name``; start a fresh one if none is left.

        Returns the number dropped. Spares still starting are kept (they are awaited by the hand-out).
        """
        pool = getattr(self, "_pools", {}).get(notebook_name)
        if not pool:
            return 0
        dropped = 0
        for task in list(pool):
            if not task.done():
                continue
            kernel_id = ""
            try:
                kernel_id = task.result()["kernel_id"]
                alive = await self._spare_alive(kernel_id)
            except Exception:
                alive = False
            if alive:
                continue
            pool.remove(task)
            dropped += 1
            self.log.warning(
                "Preheated kernel %s is dead or was restarted; it is not handed to a page.", kernel_id
            )
            if kernel_id in self:
                asyncio.get_running_loop().create_task(self._shutdown_quietly(kernel_id))
        if dropped and not pool:
            self.fill_if_needed(delay=0, notebook_name=notebook_name)  # type: ignore[attr-defined]
        return dropped

    async def _shutdown_quietly(self, kernel_id: str) -> None:
        with contextlib.suppress(Exception):
            await self.shutdown_kernel(kernel_id, now=True)

    # ------------------------------------------------------------------------------------------
    async def _shutdown_if_abandoned(self, kernel_id: str, why: str) -> None:
        self._pending.pop(kernel_id, None)
        if kernel_id not in self or self._kernel_connections.get(kernel_id, 0) > 0:
            return
        self.log.info("Shutting down kernel %s: %s.", kernel_id, why)
        with contextlib.suppress(KeyError, RuntimeError):  # already gone (the beacon was first)
            await self.shutdown_kernel(kernel_id)

    def _pooled(self) -> set[str]:
        """Kernels waiting in Voilà's preheated pool (Voilà's subclass of us keeps ``_pools``)."""
        pooled = set()
        for pool in getattr(self, "_pools", {}).values():
            for task in pool:
                with contextlib.suppress(Exception):
                    if task.done():
                        pooled.add(task.result()["kernel_id"])
        return pooled

    async def _watch_unclaimed(self) -> None:
        while True:
            await asyncio.sleep(self.check_interval)
            with contextlib.suppress(Exception):  # never let the watcher die
                await self._check_unclaimed()

    async def _check_unclaimed(self) -> None:
        now = time.monotonic()
        pooled = self._pooled()
        for kernel_id in list(self.list_kernel_ids()):
            kernel = self._kernels.get(kernel_id)
            if (
                kernel is None
                or kernel_id in self._connected_once
                or kernel_id in pooled
                or self._kernel_connections.get(kernel_id, 0) > 0
                or getattr(kernel, "execution_state", "") != "idle"
            ):
                self._unclaimed_since.pop(kernel_id, None)
                continue
            since = self._unclaimed_since.setdefault(kernel_id, now)
            if now - since >= self.unclaimed_timeout:
                await self._shutdown_if_abandoned(kernel_id, "no page ever connected to it")


def _checking_spares(
    handout: Callable[..., Coroutine[Any, Any, Any]],
) -> Callable[..., Coroutine[Any, Any, Any]]:
    """Voilà's ``get_rendered_notebook``, preceded by :meth:`ClosingKernelManager.drop_dead_spares`."""

    @functools.wraps(handout)
    async def get_rendered_notebook(
        self: ClosingKernelManager, notebook_name: str, *args: Any, **kwargs: Any
    ) -> Any:
        if notebook_name is not None:
            await self.drop_dead_spares(notebook_name)
        return await handout(self, notebook_name, *args, **kwargs)

    get_rendered_notebook.checks_spares = True  # type: ignore[attr-defined]
    return get_rendered_notebook
