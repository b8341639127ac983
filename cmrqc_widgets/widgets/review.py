"""ReviewWidget: the whole review screen as one composed ipywidget.

Composition only: the state lives in :class:`~cmrqc_widgets.widgets.state.ReviewState`; every panel
is a thin view linked to it. One module on purpose (~480 lines): the screen's wiring, its key
handling and the public parts tests reach for are read together; each panel is its own module.
Layout::

    header:   title · fixed header (patient id, "n of N", both phases' decisions, flags, phase
              switch, prev/next/next undecided, "?") · error line · metrics_area (the strip)
    left:     slice viewer (MRI + overlay | labels) · slice controls · display controls ·
              decision bar (4 decisions, comment, "saved 12:03:41")
    middle:   3D panel (collapsible) · case info
    right:    navigation (phase, prev/next, next undecided, order, filter, patient list, progress) ·
              stats · DICOM upload (a zipped study becomes a new dataset)
    footer:   help line of the keys · key bridge (document keys, comment commits, heartbeat) · log

Never the wrong patient: the state prepares every case for the panels (packed volume, 3D points)
before it tells them to draw, and names it (``case_id``); the slice viewer holds the identity of
the volume it was sent and refuses one that is not the state's (kernel side and in the browser);
the title names the patient and phase. Any failure blanks the images and says why at the top.

3D never slows 2D: with the 3D panel open, a switch sends the 2D batch first and updates the 3D
panel once the reviewer has stayed :data:`THREE_D_QUIET` on that case (from the kernel's event
loop): cases passed over quickly never reach the 3D view, whose software-WebGL redraw would hold
the browser's main thread, and the 2D paint with it, for a good part of a second. A patient
switch only sends what was prepared ahead: the state's prefetcher packs the neighbours' volumes
for the slice viewer (and extracts their 3D points while the 3D panel is open) in the background,
so the switch itself takes a few milliseconds, and the slice viewer sends those volumes to the
browser once it has painted the case, so the next one is usually painted from its memory. Slice
moves are painted in the browser and touch nothing here but the 3D panel's slice plane.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import html
import logging
import os
import weakref
from collections.abc import Iterator
from typing import Any

from ipywidgets import HTML, HBox, Layout, VBox
from traitlets import dlink, link

from ..render.packing import identity_text, pack_case
from . import keys as keymap
from .case_info import CaseInfo
from .controls import DisplayControls, SliceControls
from .current import could_not_show
from .dicom_upload import DicomUpload
from .header import ScreenHeader
from .history import HistoryPanel
from .hotkeys import KeyBridge
from .kernel import kernel_scheduler, register_screen
from .log_panel import LogPanel
from .metrics_strip import MetricsStrip
from .panels import DecisionBar, NavigationPanel
from .queue import patient_name
from .slice_viewer import SliceViewer
from .state import DEFAULT_CACHE_MB, ReviewState
from .stats import StatsPanel
from .volume3d import DEFAULT_CAP, Volume3DPanel

log = logging.getLogger(__name__)

WINDOW_PRESETS = {"auto": 1.0, "contrast": 0.6, "wide": 2.0}
"""Window presets: the width of the case's robust window times this, about the same centre."""

THREE_D_QUIET = 0.5
"""Seconds a reviewer stays on a case before its 3D view is updated: the 2D batch reaches the
browser first, and a reviewer moving faster than this skips the 3D work (and the browser's 3D
redraw) of the cases passed over (a debounce: each switch starts the wait again)."""


class ReviewWidget(VBox):
    """The review screen of one reviewer: images, 3D, navigation, decisions, statistics.

    Parameters
    ----------
    root : path, optional
        Data root; ``CMRQC_ROOT`` or the default when omitted.
    user : str, optional
        Reviewer; ``JUPYTERHUB_USER``, else ``CMRQC_USER``, else the OS user when omitted.
    dataset : str, optional
        Dataset file to open; by default the one used last, else the first.
    cache_mb : float
        Most memory for decoded cases (the current, previous and next patients are kept).
    layout : str or Layout, optional
        Case file layout; detected per patient when omitted.
    show_3d : bool
        Start with the 3D panel expanded (collapsed, it costs nothing).
    points_cap : int
        Most points in the 3D panel.
    state : ReviewState, optional
        Use an existing state (then ``root``, ``user``, ``dataset``, ``cache_mb`` are ignored).
    freeze_gc : bool, optional
        Once built, move the objects alive so far (imports, widgets) out of the way of Python's
        cyclic garbage collector (``gc.freeze``). Otherwise a full collection walks ~200,000
        long-lived objects and pauses a patient switch by ~90 ms now and then. (Those objects are
        then only freed by reference counting, which is how widgets alive for a session go.)
        The default, None, freezes only in a Voilà dashboard kernel (``VOILA_KERNEL_ID`` set): a
        researcher's notebook kernel is shared with their own work, which must stay collectable.

    Examples
    --------
    >>> from cmrqc_widgets import ReviewWidget
    >>> w = ReviewWidget(root="JSON", user="alice", dataset="cohort.json")
    >>> w.reject_button.click(); w.comment.value = "LV leak"; w.next_patient_button.click()
    """

    def __init__(
        self,
        root: Any = None,
        user: str | None = None,
        dataset: str | None = None,
        cache_mb: float = DEFAULT_CACHE_MB,
        *,
        layout: Any = None,
        show_3d: bool = False,
        points_cap: int = DEFAULT_CAP,
        state: ReviewState | None = None,
        freeze_gc: bool | None = None,
        **kwargs: Any,
    ) -> None:
        self.log_panel = LogPanel(layout=Layout(width="100%"))
        self._schedule = kernel_scheduler()  # None outside a kernel: 3D then follows 2D at once
        guard = self.log_panel.guard
        self.state = state or ReviewState(root, user, dataset, cache_mb=cache_mb, layout=layout)
        st = self.state

        self.slice_view = SliceViewer()
        self.slice_view.add_class("cmrqc-slice-viewer")
        self.slice_controls = SliceControls(st, guard=guard)
        presets = (list(WINDOW_PRESETS), self.window_preset)
        self.display_controls = DisplayControls(
            st, reset_window=self.reset_window, guard=guard, presets=presets
        )
        self.decision_bar = DecisionBar(st, guard=guard)
        self.volume_view = Volume3DPanel(cap=points_cap, guard=guard)
        self.case_info = CaseInfo(st, guard=guard)
        self.history = HistoryPanel(st, guard=guard)
        self.navigation = NavigationPanel(st, guard=guard, moves_elsewhere=True)
        self.stats = StatsPanel(st, guard=guard)
        self.dicom_upload = DicomUpload(st, guard=guard)
        self.title = HTML("")
        self.metrics_strip = MetricsStrip(st.triage, guard=guard, go_to=st.show_slice)
        self.metrics_area = HBox(  # a fixed height: the images never jump between cases
            [self.metrics_strip], layout=Layout(width="100%", height="66px", overflow="hidden")
        )
        self.help = HTML(f"<small>{html.escape(keymap.HELP)}</small>")

        shown = ("overlay", "contour", "mosaic", "three_views", "invert", "alpha", "window", "zoom")
        shown = (*shown, "visible")
        for name in ("slice", "view", *shown, "playing", "fps"):
            link((st, name), (self.slice_view, "slice_index" if name == "slice" else name))
        dlink((st, "case_id"), (self.slice_view, "case_id"))
        link((st, "show_3d"), (self.volume_view.toggle, "value"))
        self.volume_view.provider = lambda case: st.prepare("points")
        st.observe(guard(lambda change: self.volume_view.set_visible(change.new)), "visible")
        st.observe(guard(self._show_slice_3d), ["slice", "view"])
        st.observe(guard(self._show_case), "case_serial")
        st.observe(guard(self._show_title), ["dataset", "patient", "phase"])

        self.key_area = VBox(
            [self.slice_view, self.slice_controls], layout=Layout(flex="0 0 auto", width="100%")
        )
        self.key_area.add_class("cmrqc-key-area")
        self.hotkeys = KeyBridge(
            on_key=guard(self.handle_key),
            on_commit=guard(st.commit_typed),
            help_rows=keymap.HELP_ROWS,
            keys=keymap.forwarded_keys(),
        )
        dlink((st, "saved_at"), (self.hotkeys, "saved_at"))
        register_screen(self)  # a newer tab of this reviewer ends this one with a sentence (kernel.py)
        self.header = ScreenHeader(st, self.navigation.moves, self.hotkeys.show_keys, guard=guard)
        self.banner = self.header.error_line
        st.observe(guard(self._show_case_key), ["patient", "phase"])
        self._show_case_key()
        # Every panel exists by now: the batch hook holds them all, the tasks prepare the case.
        st.add_batch_hook(self._hold_all)
        # Looked up at call time, so tests can watch where packing happens.
        st.add_task("pack", lambda case: pack_case(case))
        st.add_task("points", self.volume_view.points_for, lambda: self.volume_view.expanded)
        # The neighbours' volumes go to the browser once it has painted the case (issue 14).
        st.observe(guard(self.offer_neighbours), "neighbours")
        # What the patient keys will show, told ahead (issue 14): after every case, order or queue change.
        self.slice_view.ahead_keys = keymap.patient_move_keys()
        st.observe(guard(self.announce_moves), ["case_serial", "queue"])
        st.prefetcher.on_prepared = _when_prepared(weakref.ref(self))
        self.offer_neighbours()  # those packed while the screen was being built had no listener yet

        # The image column takes the width left over; the slice viewer sizes its frames to it.
        left = VBox(
            [self.key_area, self.display_controls, self.decision_bar],
            layout=Layout(flex="1 1 560px", min_width="560px", padding="0 8px 0 0"),
        )
        middle = VBox(
            [self.volume_view, self.history, HTML("<b>Case</b>"), self.case_info],
            layout=Layout(flex="0 0 280px", width="280px", padding="0 8px 0 0", overflow="hidden"),
        )
        right = VBox(
            [self.navigation, self.stats, self.dicom_upload],
            layout=Layout(flex="0 1 380px", min_width="300px", overflow="auto"),
        )
        super().__init__(
            [
                self.title,
                self.header,
                self.metrics_area,
                HBox([left, middle, right], layout=Layout(flex_flow="row wrap")),
                self.help,
                self.hotkeys,
                self.log_panel,
            ],
            **kwargs,
        )
        self.add_class("cmrqc-review")
        self._show_title()
        self._show_case()
        if show_3d:
            st.show_3d = True
        # A kernel shut down by the idle culler (the tab closed) saves the comment draft first.
        atexit.register(_close_state, weakref.ref(st))
        if freeze_gc is None:
            freeze_gc = "VOILA_KERNEL_ID" in os.environ
        if freeze_gc:
            _freeze_heap()
            self.volume_view.on_build = _freeze_heap  # ipyvolume and pythreejs: ~100,000 more objects

    # ------------------------------------------------------------------------------------------
    # public parts (the names tests and power users reach for)
    @property
    def accept_button(self) -> Any:
        """The "accept" decision button."""
        return self.decision_bar.buttons["accept"]

    @property
    def reject_button(self) -> Any:
        """The "reject" decision button."""
        return self.decision_bar.buttons["reject"]

    @property
    def finetune_button(self) -> Any:
        """The "fine-tune" decision button."""
        return self.decision_bar.buttons["finetune"]

    @property
    def unclassified_button(self) -> Any:
        """The "unclassified" decision button."""
        return self.decision_bar.buttons["unclassified"]

    @property
    def comment(self) -> Any:
        """The comment box of the current patient and phase."""
        return self.decision_bar.comment

    @property
    def prev_patient_button(self) -> Any:
        """Previous patient (wraps)."""
        return self.navigation.prev_patient_button

    @property
    def next_patient_button(self) -> Any:
        """Next patient (wraps)."""
        return self.navigation.next_patient_button

    @property
    def next_undecided_button(self) -> Any:
        """Next patient or phase without a decision."""
        return self.navigation.next_undecided_button

    @property
    def phase_toggle(self) -> Any:
        """ED / ES switch."""
        return self.navigation.phase_toggle

    @property
    def patient_list(self) -> Any:
        """Patients of the queue with their ED and ES decisions; picking one jumps there."""
        return self.navigation.patient_list

    @property
    def filter_dropdown(self) -> Any:
        """Which patients the queue holds."""
        return self.navigation.filter_dropdown

    @property
    def progress_bar(self) -> Any:
        """Patients decided (both phases) of all."""
        return self.navigation.progress_bar

    @property
    def slice_slider(self) -> Any:
        """Slice index of the current view."""
        return self.slice_controls.slice_slider

    @property
    def dataset_dropdown(self) -> Any:
        """The reviewer's dataset files; picking one opens it."""
        return self.stats.dataset_dropdown

    @property
    def log_output(self) -> Any:
        """The Output where callback exceptions and the package's warnings appear."""
        return self.log_panel.output

    @property
    def order_dropdown(self) -> Any:
        """Order of the queue: file order or most suspicious first."""
        return self.navigation.order_dropdown

    @property
    def triage(self) -> Any:
        """The automatic checks of the current case and the dataset (see ``state.triage``)."""
        return self.state.triage

    @property
    def stats_image(self) -> Any:
        """Pie chart of the decisions of the open dataset (PNG)."""
        return self.stats.stats_image

    # ------------------------------------------------------------------------------------------
    def handle_key(self, event: dict[str, Any]) -> bool:
        """Act on one key event from the page; return True when it did something.

        Ignored: keys typed in a text field, keys with Ctrl/Alt/Meta (but Ctrl+Z, undo), auto-repeat
        of saving keys, and keys that are not shortcuts (see :mod:`cmrqc_widgets.widgets.keys`).
        """
        action = keymap.action_for(event)
        if action is None:
            return False
        name, args = action
        getattr(self.state, name)(*args)
        return True

    def _show_case_key(self, change: Any = None) -> None:
        self.hotkeys.case_key = self.state.case_key

    def reset_window(self) -> None:
        """Reset the window/level to the robust default of the current case."""
        self.state.window = list(self.slice_view.default_window)

    def window_preset(self, name: str) -> None:
        """Apply window preset ``name`` (see :data:`WINDOW_PRESETS`) to the current case."""
        low, high = self.slice_view.default_window
        centre, width = (low + high) / 2, (high - low) * WINDOW_PRESETS[name]
        self.state.window = [max(0.0, centre - width / 2), min(255.0, max(centre + width / 2, centre + 1))]

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Block until the background work is done: the neighbours prepared, the checks measured.

        For scripts, tests and benchmarks; in a kernel everything arrives by itself. Returns False
        on timeout.
        """
        prepared = self.state.prefetcher.wait(timeout)
        self.offer_neighbours()
        return self.state.triage.wait(timeout) and prepared

    def offer_neighbours(self, change: Any = None) -> None:
        """Offer the slice viewer the neighbours' packed volumes prepared so far (see
        :meth:`SliceViewer.offer`: they go to the browser once it has painted the current case)."""
        st = self.state
        ready = st.prefetcher.ready("pack", st.neighbours) if st.case is not None else []
        self.slice_view.offer(ready)
        self.announce_moves()

    def announce_moves(self, change: Any = None) -> None:
        """Tell the slice viewer which case the next / previous patient keys will show from here
        (:meth:`SliceViewer.announce`), for those whose volume is packed already."""
        st = self.state
        moves = {}
        for move, direction in (("next", +1), ("prev", -1)):
            target = st.step_target(direction) if st.case is not None else None
            folder = st.allowed_dir(st.patients[target]) if target not in (None, st.patient_index) else None
            found = st.prefetcher.ready_case("pack", folder, st.phase) if folder is not None else None
            if found is not None:
                patient = st.patients[target]
                identity = identity_text(patient, st.phase, st.case_serial + 1)  # as the move's load names it
                moves[move] = (*found, identity, patient_name(patient))
        self.slice_view.announce(moves)

    def close(self) -> None:
        """Save a pending comment, release the dataset, stop the background threads, close all widgets."""
        state = getattr(self, "state", None)
        if state is not None:
            with contextlib.suppress(Exception):
                state.close()
        if hasattr(self, "log_panel"):
            self.log_panel.detach()
        super().close()

    # ------------------------------------------------------------------------------------------
    def _show_case(self, change: Any = None) -> None:
        st = self.state
        case = st.case
        try:
            if case is not None:
                packed = st.result("pack")
                self.slice_view.show_case(case, slice_index=st.slice, packed=packed, identity=st.case_id)
            else:
                self.slice_view.show_message(st.error or "Nothing to show.")
        except Exception as exc:  # never leave the previous case's pixels on screen
            if case is not None:
                st.fail_case(exc)  # every panel then shows the sentence (this runs again, case None)
                return
            log.error("Showing %s %s failed", st.patient, st.phase, exc_info=exc)
            message = could_not_show(st.patient, st.phase, exc)
            self.slice_view.show_message(message)
            self.volume_view.show_case(None, message)
            st.error = message
            return
        if not self.volume_view.expanded or self._schedule is None:
            self._show_3d(st.case_serial)
        else:  # after the 2D batch has gone out; skipped if the reviewer has moved on by then
            serial = st.case_serial
            self._schedule(self.log_panel.guard(lambda: self._show_3d(serial)), THREE_D_QUIET)

    def _show_3d(self, serial: int) -> None:
        """Show the current case in the 3D panel, unless another case has replaced it since ``serial``."""
        st = self.state
        if serial != st.case_serial:
            return
        case = st.case
        try:
            with self.volume_view.hold_sync():
                self.volume_view.show_slice(st.view, st.slice)
                self.volume_view.show_case(case, st.error, points=st.result("points"))
        except Exception as exc:  # the 3D panel failed on this case: blank every panel, say why
            if case is None:
                raise
            st.fail_case(exc)

    def _show_slice_3d(self, change: Any = None) -> None:
        """Move the 3D panel's slice plane, if the panel shows the current case (else the deferred
        3D update places it: a switch must not make the browser redraw the 3D view at once)."""
        if self.volume_view.drawn is not None and self.volume_view.drawn is self.state.case:
            self.volume_view.show_slice(self.state.view, self.state.slice)

    def _show_title(self, change: Any = None) -> None:
        st = self.state
        user = html.escape(str(st.store.user))
        dataset = html.escape(st.dataset or "no dataset")
        here = ""
        if st.patient:
            name = html.escape(patient_name(st.patient))
            here = f" · <span class='cmrqc-title-case'>{name} {st.phase}</span>"
        self.title.value = f"<h3 class='cmrqc-title'>Segmentation QC · {user} · {dataset}{here}</h3>"

    def _sync_widgets(self) -> list[Any]:
        # Held in this order and released in reverse: the slice viewer's update goes out first,
        # so the browser paints the images before it re-renders lists, stats and history.
        return [
            self.hotkeys,
            *self.metrics_strip.sync_widgets(),
            *self.slice_controls.sync_widgets(),
            *self.display_controls.sync_widgets(),
            *self.decision_bar.sync_widgets(),
            *self.navigation.sync_widgets(),
            *self.case_info.sync_widgets(),
            *self.history.sync_widgets(),
            *self.stats.sync_widgets(),
            *self.volume_view.sync_widgets(),
            *self.header.sync_widgets(),  # the patient's name goes out with the images
            self.title,
            self.slice_view,
        ]

    @contextlib.contextmanager
    def _hold_all(self) -> Iterator[None]:
        """Hold the sync of every widget a patient switch touches: one batch to the browser."""
        with contextlib.ExitStack() as stack:
            for widget in self._sync_widgets():
                stack.enter_context(widget.hold_sync())
            yield


def _when_prepared(ref: weakref.ref[ReviewWidget]) -> Any:
    """The prefetcher's listener: offer a newly packed neighbour from the kernel's loop (weakly held)."""

    def prepared(name: str) -> None:
        widget = ref()
        if name == "pack" and widget is not None and widget._schedule is not None:
            widget._schedule(widget.log_panel.guard(widget.offer_neighbours), 0.0)

    return prepared


def _close_state(ref: weakref.ref[ReviewState]) -> None:
    state = ref()
    if state is not None:
        with contextlib.suppress(Exception):
            state.close()


def _freeze_heap() -> None:
    """Collect once, then freeze what survives (see the ``freeze_gc`` parameter)."""
    gc.collect()
    gc.freeze()
