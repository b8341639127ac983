"""Slice viewer that keeps the current patient's volume in the browser.

A kernel round trip per slice (a new PNG in an ``Image`` widget) takes 50-66 ms in the browser,
too slow for a 30 ms slice step or 20 frames/s play. :class:`SliceViewer` therefore sends one
phase of one patient once, as two zlib-compressed uint8 volumes (the MRI mapped to 0..255 and the
structure codes), and the JavaScript side (``slice_viewer.js``) paints slices, reformats, overlay,
window/level and zoom from memory. The kernel stays the source of truth: every setting is a synced
trait, so key handlers and tests change ``slice_index``, ``view`` or ``alpha`` without a browser.

Arrays are indexed ``[slice, row, col]`` in display orientation (see ``cmrqc_widgets.cases.reader``).

Never the wrong patient: every volume sent carries the identity of the case it was packed from
(``volume_id``, ``"<serial>:<phase>:<patient>"``), and ``case_id`` holds the identity the review
state currently shows. :meth:`SliceViewer.show_case` refuses a packed volume of another case, and
the browser refuses to paint a volume whose ``volume_id`` is not ``case_id``: it blanks the images
and says "could not show <patient> <phase>" instead.

Next patient from the browser's memory (issue 14): the volume bytes travel as custom messages
(``{"type": "volume", "key": ...}`` with two binary buffers), keyed by the packed volume's content
key (:func:`~cmrqc_widgets.render.packing.volume_key`); the synced trait ``volume_key`` names the one
to paint. Once the browser reports the current case painted (``{"type": "painted"}``), the kernel
sends the neighbours' volumes it was offered (:meth:`SliceViewer.offer`) and the browser keeps the
last :data:`BROWSER_KEEPS`. A switch to a kept volume then sends only traits (a few hundred bytes).
The kernel still chooses: the browser paints only the volume ``volume_key`` names, checks that its
key's patient and phase are those of ``case_id``, and asks for it (``{"type": "want"}``) when it
does not hold it. A file that changed gets a new key, so a kept copy of the old one is never shown.

ED and ES side by side (issue 12): the mosaic shows both phases of the current patient. The other
phase's volume is one the kernel chose too: ``other_key`` names it only when it was packed from the
same patient folder as the case on screen and from the other phase (else it stays ''), it goes
out with the neighbours once the case is painted, and the browser paints it only when the key's
patient and phase are ``case_id``'s patient and the other phase; until then that half says
"ES loading…". The drawing of the mosaic and of the three views (short axis and both long axes
with cross-reference lines) lives in ``slice_views.js``.

A switch without the round trip (issue 14): the kernel announces in ``ahead`` the case each
patient-move key (``ahead_keys``) will show from the case on screen — the volume key, the identity
it will give it, the patient's name and what the new case sets (shape, spacing, window,
orientation letters) — and updates it whenever the order, the queue, the dataset or the case
changes. On such a key the browser paints that volume at once, if it holds it, and names its patient
in the page (viewer, header and title) in the same frame; the key still goes to the kernel, which
chooses. Its answer (``volume_key``, ``case_id``) ends the guess: the same case is confirmed, another
is painted instead. Only announced volumes are painted ahead, only from the case the announcement
was made for, and never while an earlier move is unanswered.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anywidget
import traitlets

from ..names import STRUCTURE_COLOURS, STRUCTURES
from ..render.orientation import edge_letters
from ..render.packing import (
    UNKNOWN_CODE,
    VIEWS,
    CaseMismatchError,
    PackedCase,
    case_source,
    deflate,
    hex_colour,
    identity_text,
    pack_case,
    pack_volume,
    view_length,
)
from .browser_volumes import BrowserVolumes

# Packing moved to render/packing.py; these names stay importable from here (tests, notebooks).
__all__ = [
    "UNKNOWN_CODE",
    "VIEWS",
    "CaseMismatchError",
    "PackedCase",
    "SliceViewer",
    "deflate",
    "identity_text",
    "pack_case",
    "pack_volume",
    "view_length",
]

class SliceViewer(BrowserVolumes, anywidget.AnyWidget):
    """MRI with overlay and the labels alone, side by side, painted in the browser.

    Examples
    --------
    >>> viewer = SliceViewer()
    >>> viewer.show_case(case)          # the phase's volume, then the traits naming it
    >>> viewer.slice_index = 3          # painted on the client, no image sent
    >>> viewer.step(-1); viewer.view = "hla"; viewer.alpha = 0.6
    """

    # Plain files joined into one ES module (anywidget loads one module, from a string).
    _esm = "\n".join(
        Path(__file__).with_name(f).read_text()
        for f in ("volume_store.js", "slice_views.js", "slice_viewer.js")
    )
    _css = Path(__file__).with_name("slice_viewer.css")

    image = traitlets.Bytes(b"")
    """zlib stream of the current uint8 MRI (kernel side; it travels in a ``volume`` message)."""
    labels = traitlets.Bytes(b"")
    """zlib stream of the current structure codes (kernel side, like ``image``)."""
    volume_key = traitlets.Unicode("").tag(sync=True)
    """Content key of the volume to paint ('' when none): the browser paints the volume it holds
    under this key, or asks for it."""
    shape = traitlets.List(traitlets.Int(), default_value=[0, 0, 0]).tag(sync=True)
    spacing = traitlets.List(traitlets.Float(), default_value=[1.0, 1.0, 1.0]).tag(sync=True)

    slice_index = traitlets.Int(0).tag(sync=True)
    view = traitlets.Enum(VIEWS, default_value="sa").tag(sync=True)
    overlay = traitlets.Bool(True).tag(sync=True)
    alpha = traitlets.Float(0.4).tag(sync=True)
    window = traitlets.List(traitlets.Float(), default_value=[0.0, 255.0]).tag(sync=True)
    zoom = traitlets.Float(1.0).tag(sync=True)
    visible = traitlets.List(traitlets.Unicode(), default_value=list(STRUCTURES)).tag(sync=True)
    structures = traitlets.List(traitlets.Unicode(), default_value=list(STRUCTURES), read_only=True).tag(
        sync=True
    )
    """Structure code ``i + 1`` is ``structures[i]`` (names.STRUCTURES), so the client needs no copy."""
    colours = traitlets.Dict(
        default_value={name: hex_colour(rgb) for name, rgb in STRUCTURE_COLOURS.items()}
    ).tag(sync=True)
    invert = traitlets.Bool(False).tag(sync=True)
    """Grey levels inverted (dark blood, bright background), after the window."""
    contour = traitlets.Bool(False).tag(sync=True)
    """Overlay as outlines (each structure's edge, opaque) instead of filled."""
    mosaic = traitlets.Bool(False).tag(sync=True)
    """Every short-axis slice of the phase at once, in a grid (painted from the volume already sent)."""
    three_views = traitlets.Bool(False).tag(sync=True)
    """Short axis, horizontal and vertical long axis side by side, with cross-reference lines (the
    mosaic wins when both are on)."""
    other_key = traitlets.Unicode("").tag(sync=True)
    """Content key of the current patient's other phase (the mosaic's second half), '' while the
    kernel holds no packed volume of it."""
    playing = traitlets.Bool(False).tag(sync=True)
    fps = traitlets.Int(5).tag(sync=True)
    message = traitlets.Unicode("").tag(sync=True)
    orientation = traitlets.Dict(default_value={}).tag(sync=True)
    """Letters at the image edges per view, ``{"sa": {"left": "R", "right": "L", "top": "A", ...}}``
    (:func:`~cmrqc_widgets.render.orientation.edge_letters` of the case's affine)."""
    case_id = traitlets.Unicode("").tag(sync=True)
    """Identity of the case the review state shows (:func:`identity_text`); the browser paints only
    a volume whose ``volume_id`` equals it."""
    volume_id = traitlets.Unicode("").tag(sync=True)
    """Identity of the case ``image`` and ``labels`` were packed from ('' when none)."""

    ahead = traitlets.Dict(default_value={}).tag(sync=True)
    """What each patient-move key will show from the case on screen (:meth:`announce`):
    ``{"from": case_id, "next": {"key", "case_id", "label", "phase", "shape", "spacing", "window",
    "orientation"}, "prev": {...}}``; ``{}`` when nothing is announced."""
    ahead_keys = traitlets.Dict(default_value={}).tag(sync=True)
    """``{"next": ["ArrowDown", "n"], "prev": [...]}``: keys (``KeyboardEvent.key``, letters lower-case)
    on which the browser paints ``ahead`` at once; ``{}`` (a viewer alone) paints nothing ahead."""

    default_window = traitlets.List(traitlets.Float(), default_value=[0.0, 255.0])
    """Robust window of the current volume (not synced): what a "reset window" control restores."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._sent: OrderedDict[str, None] = OrderedDict()  # keys the browser is believed to hold
        self._current: PackedCase | None = None
        self._offered: list[PackedCase] = []
        self._other: PackedCase | None = None  # the current patient's other phase, when packed
        self.painted_key = ""
        """Key of the last volume the browser reported painted ('' before any)."""
        self.n_volumes_sent = 0
        """Volume messages sent (tests and benchmarks read it)."""
        self.on_msg(self._on_browser_message)

    @property
    def n_slices(self) -> int:
        """Number of slices of the current view (0 when no volume is shown)."""
        return view_length(self.shape, self.view)

    @property
    def shows_current(self) -> bool:
        """Whether the volume held is the case named by ``case_id`` (False when none is held)."""
        return bool(self.volume_id) and self.volume_id == self.case_id and bool(self.image)

    @traitlets.validate("slice_index")
    def _clamp_slice(self, proposal: dict[str, Any]) -> int:
        # Remember the index asked for: a view or volume arriving just after it (the order of
        # linked traits is not ours to choose) clamps against the new length, not the old one.
        self._wanted_slice = int(proposal["value"])
        return int(min(max(proposal["value"], 0), max(self.n_slices - 1, 0)))

    @traitlets.validate("alpha")
    def _clamp_alpha(self, proposal: dict[str, Any]) -> float:
        return float(min(max(proposal["value"], 0.0), 1.0))

    @traitlets.validate("zoom")
    def _clamp_zoom(self, proposal: dict[str, Any]) -> float:
        return float(min(max(proposal["value"], 0.5), 3.0))

    @traitlets.validate("fps")
    def _clamp_fps(self, proposal: dict[str, Any]) -> int:
        return int(min(max(proposal["value"], 1), 20))

    @traitlets.validate("window")
    def _check_window(self, proposal: dict[str, Any]) -> list[float]:
        value = list(proposal["value"])
        if len(value) != 2:
            raise traitlets.TraitError(f"The window must be [low, high], not {value!r}.")
        low, high = (min(max(float(v), 0.0), 255.0) for v in value)
        if high <= low:
            raise traitlets.TraitError(f"The window high ({high}) must be above its low ({low}).")
        return [low, high]

    @traitlets.validate("visible")
    def _check_visible(self, proposal: dict[str, Any]) -> list[str]:
        unknown = [name for name in proposal["value"] if name not in STRUCTURES]
        if unknown:
            raise traitlets.TraitError(f"Unknown structures {unknown}; use names from {list(STRUCTURES)}.")
        return list(proposal["value"])

    @traitlets.observe("view", "shape")
    def _reclamp_slice(self, change: dict[str, Any]) -> None:
        # Re-validate against the new view length; the validator does the clamping.
        self.slice_index = getattr(self, "_wanted_slice", self.slice_index)

    def show_case(
        self,
        case: Any,
        slice_index: int | None = None,
        packed: PackedCase | None = None,
        identity: str | None = None,
    ) -> None:
        """Show one phase of a case: its volume message (unless the browser holds it), then its traits.

        Parameters
        ----------
        case : Case
            Anything with ``image`` (slices, rows, cols), ``labels``, ``label_map``, ``spacing``,
            ``patient_dir`` and ``phase``.
        slice_index : int, optional
            Slice to show; by default the current index, clamped to the new volume.
        packed : PackedCase, optional
            :func:`pack_case` of ``case`` when already computed (e.g. by the prefetch).
        identity : str, optional
            The review state's identity of this case (:func:`identity_text`); it must equal
            ``case_id`` (linked from the state). Standalone, both are derived from the case.

        Raises
        ------
        CaseMismatchError
            ``packed`` was packed from another case, or ``identity`` is not ``case_id``.
        """
        if packed is None:
            packed = pack_case(case)
        if not packed.belongs_to(case):
            raise CaseMismatchError(
                f"the volume packed from {Path(packed.patient_dir).name} {packed.phase} "
                "is not the case to show, {} {}".format(Path(case_source(case)[0]).name, case_source(case)[1])
            )
        if identity is None:
            identity = identity_text(Path(case_source(case)[0]).name, case_source(case)[1], 0)
            case_id = identity
        else:
            case_id = self.case_id
            if identity != case_id:
                raise CaseMismatchError(f"the case {identity!r} is not the one on screen, {case_id!r}")
        image_bytes, labels_bytes, shape, window = packed.volume
        index = self.slice_index if slice_index is None else slice_index
        known = [p for p in (self._current, self._other, *self._offered) if p is not None]
        self._current = packed
        self._other = self._other_phase(known)
        if packed.key in self._sent:
            self._sent.move_to_end(packed.key)  # kept in the browser: only the traits travel
        else:
            self._send_volume(packed)  # goes out before the traits naming it
        with self.hold_sync():
            self.case_id = case_id
            self.volume_id = identity
            self.volume_key = packed.key
            self.other_key = self._other.key if self._other is not None else ""
            self.image = image_bytes
            self.labels = labels_bytes
            self.spacing = [float(s) for s in case.spacing]
            affine = getattr(case, "affine", None)
            self.orientation = edge_letters(affine) if affine is not None else {}
            self.shape = shape
            self.default_window = window
            self.window = window
            self.slice_index = index
            self.message = ""

    def announce(self, moves: Mapping[str, tuple[Any, PackedCase, str, str]]) -> None:
        """Announce what each patient move will show from the current case (see ``ahead``).

        Parameters
        ----------
        moves : mapping
            ``"next"`` / ``"prev"`` -> (case, its packed volume, the identity the review state will
            give it, the patient's name). Moves left out are not painted ahead.
        """
        ahead: dict[str, Any] = {}
        for move, (case, packed, identity, label) in moves.items():
            if not packed.belongs_to(case) or not self.shows_current:
                continue
            _, _, shape, window = packed.volume
            affine = getattr(case, "affine", None)
            low, high = (min(max(float(v), 0.0), 255.0) for v in window)  # as the window trait clamps
            ahead[move] = {
                "key": packed.key,
                "case_id": identity,
                "label": label,
                "phase": packed.phase,
                "shape": [int(n) for n in shape],
                "spacing": [float(v) for v in case.spacing],
                "window": [low, high],
                "orientation": edge_letters(affine) if affine is not None else {},
            }
        if ahead:
            ahead["from"] = self.case_id
        if ahead != self.ahead:
            self.ahead = ahead

    def show_message(self, text: str) -> None:
        """Drop the volume and show ``text`` (a case error, "no patients") instead of the images."""
        with self.hold_sync():
            self.playing = False
            self.volume_id = ""
            self.volume_key = ""
            self.other_key = ""
            self.orientation = {}
            self.ahead = {}
            self.image = b""
            self.labels = b""
            self.shape = [0, 0, 0]
            self.slice_index = 0
            self.message = text or "Nothing to show."
        self._current = None
        self._other = None

    def step(self, delta: int) -> int:
        """Move ``delta`` slices (clamped, no wrap) and return the new index."""
        self.slice_index = self.slice_index + int(delta)
        return self.slice_index

    def set_view(self, view: str, index: int | None = None) -> None:
        """Switch view and go to ``index``, by default the middle slice of the new view."""
        with self.hold_sync():
            self.view = view
            self.slice_index = self.n_slices // 2 if index is None else index

    def volume_nbytes(self) -> int:
        """Bytes of the volume as sent to the browser (both compressed streams)."""
        return len(self.image) + len(self.labels)
