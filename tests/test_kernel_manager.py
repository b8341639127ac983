"""The dashboard server's kernels, headless: one live dashboard per reviewer, never a dead spare.

Real kernels started by :class:`~cmrqc_widgets.serve.kernels.ClosingKernelManager`; websocket
connections are the manager's ``notify_connect`` / ``notify_disconnect`` calls, as Voilà makes them.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from cmrqc_widgets.serve.kernels import ClosingKernelManager
from cmrqc_widgets.widgets.kernel import REPLACED, hand_over

pytestmark = pytest.mark.timeout(300)


async def run_code(manager: ClosingKernelManager, kernel_id: str, code: str) -> dict:
    """Execute ``code`` in the kernel over a server-side client; return the reply's content."""
    client = manager.get_kernel(kernel_id).client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=120)
        msg_id = client.execute(code)
        while True:
            reply = await client.get_shell_msg(timeout=120)
            if reply["parent_header"].get("msg_id") == msg_id:
                return reply["content"]
    finally:
        client.stop_channels()


def fake_screen(marker: Path) -> str:
    """Kernel code registering a stand-in review screen whose page writes what it is told to show."""
    return f"""
from cmrqc_widgets.widgets import kernel

class Page:
    def __setattr__(self, name, value):
        with open({str(marker)!r}, "w") as out:
            out.write(f"{{name}}={{value}}")

class Screen:
    state = None
    hotkeys = Page()

screen = Screen()
kernel.register_screen(screen)
"""


async def settle(manager: ClosingKernelManager) -> None:
    """Wait for the replacements under way."""
    while manager._replacing:
        await asyncio.gather(*list(manager._replacing.values()), return_exceptions=True)


def test_a_second_tab_replaces_the_first_tabs_kernel(tmp_path):
    """Tab 2 connects: tab 1's kernel tells its page "continues in another tab", then it is shut down."""
    marker = tmp_path / "tab1.txt"

    async def scenario() -> tuple[list[str], list[str], str, str]:
        manager = ClosingKernelManager(unclaimed_timeout=0, disconnect_grace=60)
        try:
            first = await manager.start_kernel()
            assert (await run_code(manager, first, fake_screen(marker)))["status"] == "ok"
            manager.notify_connect(first)
            second = await manager.start_kernel()
            manager.notify_connect(second)
            await settle(manager)
            after_second = sorted(manager.list_kernel_ids())
            # A network blip of tab 2 (its websocket closes and reconnects) is not a new tab.
            manager.notify_disconnect(second)
            manager.notify_connect(second)
            await settle(manager)
            return after_second, sorted(manager.list_kernel_ids()), first, second
        finally:
            await manager.shutdown_all()

    after_second, after_blip, first, second = asyncio.run(scenario())
    assert after_second == [second] and first not in after_second
    assert after_blip == [second]
    assert marker.read_text() == f"ended={REPLACED}"


def test_a_busy_old_kernel_is_replaced_all_the_same():
    """An older kernel that cannot hand over in time (busy) is shut down anyway after the timeout."""

    async def scenario() -> list[str]:
        manager = ClosingKernelManager(unclaimed_timeout=0, handover_timeout=2)
        try:
            first = await manager.start_kernel()
            await run_code(manager, first, "1")
            client = manager.get_kernel(first).client()
            client.start_channels()
            client.execute("import time; time.sleep(60)")  # the old tab's kernel is busy
            await asyncio.sleep(0.5)
            manager.notify_connect(first)
            second = await manager.start_kernel()
            manager.notify_connect(second)
            await settle(manager)
            client.stop_channels()
            return [second, *manager.list_kernel_ids()]
        finally:
            await manager.shutdown_all()

    second, *left = asyncio.run(scenario())
    assert left == [second]


class Pooled(ClosingKernelManager):
    """Voilà's preheated pool in miniature: ``_pools`` of kernel tasks, a hand-out that pops the first."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._pools: dict[str, list[asyncio.Task]] = {}
        self.refills = 0

    def fill_if_needed(self, delay: float | None = None, notebook_name: str | None = None, **_: Any) -> None:
        self.refills += 1
        pool = self._pools.setdefault(str(notebook_name), [])
        pool.append(asyncio.get_running_loop().create_task(self._spare()))

    async def _spare(self) -> dict:
        return {"kernel_id": await self.start_kernel()}

    async def get_rendered_notebook(self, notebook_name: str, **_: Any) -> str:
        return (await self._pools[notebook_name].pop(0))["kernel_id"]


async def kill(manager: ClosingKernelManager, kernel_id: str) -> None:
    """Kill the kernel's process (as an out-of-memory killer would) and wait until it is dead."""
    kernel = manager.get_kernel(kernel_id)
    os.kill(kernel.provisioner.process.pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while await kernel.is_alive() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


def test_a_dead_or_restarted_spare_is_never_handed_to_a_page():
    """A killed spare, and one restarted since (its notebook state lost), are dropped; pages get live ones."""

    async def scenario() -> tuple[str, str, str, str, int, bool]:
        manager = Pooled(unclaimed_timeout=0)
        try:
            manager.fill_if_needed(notebook_name="review.ipynb")
            await asyncio.gather(*manager._pools["review.ipynb"])
            dead = manager._pools["review.ipynb"][0].result()["kernel_id"]
            await kill(manager, dead)
            given = await manager.get_rendered_notebook("review.ipynb")
            # Next: a spare killed and then brought back by the kernel restarter.
            manager.fill_if_needed(notebook_name="review.ipynb")
            await asyncio.gather(*manager._pools["review.ipynb"])
            restarted = manager._pools["review.ipynb"][0].result()["kernel_id"]
            await kill(manager, restarted)
            deadline = time.monotonic() + 120
            while restarted not in manager._restarted and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            came_back = bool(await manager.get_kernel(restarted).is_alive())
            given_again = await manager.get_rendered_notebook("review.ipynb")
            alive = all([await manager.get_kernel(k).is_alive() for k in (given, given_again)])
            return dead, given, restarted, given_again, manager.refills, came_back and alive
        finally:
            await manager.shutdown_all()

    dead, given, restarted, given_again, refills, alive = asyncio.run(scenario())
    assert given != dead and given_again not in (restarted, given)
    assert refills == 4  # each dropped spare was replaced by a fresh one for the waiting page
    assert alive


def test_voilas_pool_manager_checks_its_spares():
    """The class Voilà builds from ours (preheating on) runs the check before every hand-out."""
    from voila.voila_kernel_manager import voila_kernel_manager_factory

    built = voila_kernel_manager_factory(ClosingKernelManager, True, 1)
    assert issubclass(built, ClosingKernelManager)
    assert getattr(built.get_rendered_notebook, "checks_spares", False) is True


def test_hand_over_saves_the_typed_comment_and_ends_the_screen(widget, root):
    """In the kernel: the comment being typed is saved, and the page is told the review goes on elsewhere."""
    from synthetic import on_disk

    st = widget.state
    widget.decision_bar.comment.value = "typed in the old tab"
    assert hand_over() >= 1
    assert widget.hotkeys.ended == REPLACED
    assert on_disk(widget)[st.patient][f"{st.phase}_Comments"].endswith(":typed in the old tab")
