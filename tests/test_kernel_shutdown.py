"""A served kernel handles what its page sent last before it shuts down (a real kernel, no browser).

Voilà's close beacon can reach the server before the page's last widget messages reach the kernel,
and a kernel handles the shutdown request (control channel) ahead of its queued shell messages: the
comment typed just before the tab closed was lost that way (in a browser test about one run in two
under load; with the drain switched off, the check below failed when tried). ``ClosingKernelManager``
drains first, with a client of its own session: a client sharing the manager's session (the same
ZMQ identity as the test's client here, or Voilà's) made the kernel drop the pending message (4 runs
in 12 before that fix, 0 in 12 after).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cmrqc_widgets.serve.kernels import ClosingKernelManager

pytestmark = pytest.mark.slow


async def shut_down_with_a_message_queued(canary: Path) -> None:
    """Queue a slow message then one that writes ``canary``, and shut the kernel down at once."""
    manager = ClosingKernelManager(drain_timeout=30.0)
    kernel_id = await manager.start_kernel()
    client = manager.get_kernel(kernel_id).client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=60)
        client.execute("import time; time.sleep(1.0)")  # the kernel is busy when the page closes
        client.execute(f"open({str(canary)!r}, 'w').write('handled')")  # the page's last message
        await manager.shutdown_kernel(kernel_id)
    finally:
        client.stop_channels()
        if kernel_id in manager:
            await manager.shutdown_kernel(kernel_id, now=True)


def test_shutdown_waits_for_the_last_message_of_the_page(tmp_path):
    """The message queued before the shutdown (the beacon's) is handled: its file is written."""
    canary = tmp_path / "last-message"
    asyncio.run(shut_down_with_a_message_queued(canary))
    assert canary.read_text() == "handled"
