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
- kernels waiting in Voilà's preheated pool are never touched.

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
import time
from typing import Any

from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from traitlets import Float

__all__ = ["ClosingKernelManager"]


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

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._connected_once: set[str] = set()
        self._pending: dict[str, asyncio.TimerHandle] = {}
        self._unclaimed_since: dict[str, float] = {}
        self._watcher: asyncio.Task | None = None

    async def start_kernel(self, *args: Any, **kwargs: Any) -> str:
        kernel_id = await super().start_kernel(*args, **kwargs)
        if self._watcher is None and self.unclaimed_timeout > 0:
            self._watcher = asyncio.get_running_loop().create_task(self._watch_unclaimed())
        return kernel_id

    def notify_connect(self, kernel_id: str) -> None:
        super().notify_connect(kernel_id)
        self._connected_once.add(kernel_id)
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
        if kernel_id in self and not kwargs.get("now"):
            await self._drain(kernel_id)
        return await super().shutdown_kernel(kernel_id, *args, **kwargs)

    async def _drain(self, kernel_id: str) -> None:
        """Return once the kernel has handled every message its closing page sent (or time is up)."""
        deadline = time.monotonic() + self.drain_timeout
        while self._kernel_connections.get(kernel_id, 0) > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        client = self.get_kernel(kernel_id).client()
        try:
            client.start_channels(shell=True, iopub=False, stdin=False, hb=False, control=False)
            await client.kernel_info(reply=True, timeout=max(deadline - time.monotonic(), 0.1))
        except Exception as err:  # a dead or stuck kernel: shut it down anyway
            self.log.info("Kernel %s did not answer before its shutdown: %r", kernel_id, err)
        finally:
            client.stop_channels()

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
