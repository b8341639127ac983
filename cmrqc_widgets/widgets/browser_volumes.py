"""What the browser holds of the slice viewer's volumes (issue 14), kernel side.

The slice viewer sends packed volumes as messages keyed by their content; the browser keeps the
last :data:`BROWSER_KEEPS` and paints the one the kernel names. This mixin of
:class:`~cmrqc_widgets.widgets.slice_viewer.SliceViewer` decides what to send and when: the
neighbours once the current case is painted, the mosaic's other phase, a volume a view asks for
(``want``), and never a volume the kernel did not choose or offer.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..render.packing import PackedCase

__all__ = ["BROWSER_KEEPS", "KERNEL_ASSUMES", "MAX_KEY_CHARS", "BrowserVolumes"]

BROWSER_KEEPS = 8
"""Volumes the browser keeps (slice_viewer.js ``KEEP``): the current case, both phases of the
previous and next patients, the other phase here, and slack."""

KERNEL_ASSUMES = BROWSER_KEEPS
"""Volumes the kernel assumes the browser still holds: it mirrors the browser's least-recently-used
order (both touch a volume when it is sent and when it is shown), so a neighbour the browser still
holds is not sent again; a mismatch (a second view, a reload) costs one ``want`` round trip, never
a wrong image."""

MAX_KEY_CHARS = 8192
"""Longest volume key accepted from the browser (a longer one is ignored)."""


class BrowserVolumes:
    """Sending volumes to the browser's store (a mixin of the slice viewer; uses its traits
    ``volume_key``, ``painted_key``, ``other_key``, ``mosaic`` and its ``send``)."""

    def offer(self, neighbours: Iterable[PackedCase | None]) -> int:
        """Volumes the browser should hold next (neighbours first first); returns how many went out.

        They are sent once the browser reports the current volume painted (at once when it
        already has), so they never delay the case on screen; volumes it holds are not sent again.
        """
        self._offered = [p for p in neighbours if p is not None][: KERNEL_ASSUMES - 1]
        other = self._other_phase(self._offered)
        if other is not None and self._current is not None:
            self._other = other
            self.other_key = other.key
        return self._push()

    def _other_phase(self, candidates: Iterable[PackedCase]) -> PackedCase | None:
        """The candidate packed from the current case's patient folder and its other phase, if any
        (the identity check of the mosaic's second half: never another patient's volume)."""
        here = self._current
        if here is None or not here.patient_dir:
            return None
        for packed in candidates:
            if packed.patient_dir == here.patient_dir and packed.phase != here.phase and packed.phase:
                return packed
        return None

    def holds(self, key: str) -> bool:
        """Whether the browser is believed to hold the volume ``key`` (sent and not yet evicted)."""
        return key in self._sent

    def _push(self) -> int:
        if not self.volume_key or self.painted_key != self.volume_key:
            return 0  # the case on screen first
        sent = 0
        # The other phase too when it was not offered (it was the case on screen a moment ago),
        # and first when the mosaic shows it beside this one.
        order = (self._other, *self._offered) if self.mosaic else (*self._offered, self._other)
        for packed in (p for p in order if p is not None):
            if packed.key not in self._sent:
                self._send_volume(packed)
                sent += 1
        return sent

    def _send_volume(self, packed: PackedCase) -> None:
        image, labels, shape, _ = packed.volume
        self.send({"type": "volume", "key": packed.key, "shape": list(shape)}, buffers=[image, labels])
        self.n_volumes_sent += 1
        self._sent[packed.key] = None
        self._sent.move_to_end(packed.key)
        while len(self._sent) > KERNEL_ASSUMES:
            oldest = next(iter(self._sent))
            if oldest == self.volume_key:  # never forget the one on screen
                self._sent.move_to_end(oldest)
                oldest = next(iter(self._sent))
            del self._sent[oldest]

    def _on_browser_message(self, widget: Any, content: Any, buffers: Any) -> None:
        """``painted`` (send the neighbours now) or ``want`` (a view lacks a volume: send it)."""
        if not isinstance(content, dict):
            return
        key = content.get("key")
        if not isinstance(key, str) or len(key) > MAX_KEY_CHARS:
            return
        kind = content.get("type")
        if kind == "painted":
            self.painted_key = key
            self._push()
        elif kind == "want":
            # That view holds nothing we sent before it: start afresh (sending again is harmless).
            self._sent.clear()
            held = [p for p in (self._current, self._other, *self._offered) if p is not None and p.key == key]
            if held:  # only volumes the kernel chose or offered, never anything else
                self._send_volume(held[0])
