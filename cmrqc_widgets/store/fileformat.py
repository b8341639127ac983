"""The old Flask app's dataset file format, which both tools read and write.

**Decision strings.** The old app stores a decision as ``"<decision>:<comment>"`` in
``ED_Comments`` / ``ES_Comments``. :class:`Decision` reads the variants found in the wild
(``fine-tune:``, ``Accept:``, ``":comment"``, ``""``) and writes the canonical form.

**Dataset file** ``<name>.json`` (see ``SPEC.md``): one JSON object keyed by patient folder, in
file order; each patient an object holding those two strings plus whatever other tools put there,
which we keep. :func:`read_dataset_file` reads it strictly (:class:`DatasetError` naming the
file); :func:`encode_dataset` writes exactly what ``json.dumps(data, indent=4)`` would, as the
old app did, several times faster.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii as _quote
from pathlib import Path
from typing import Any

from .. import names
from ..errors import DatasetError, InvalidNameError

__all__ = [
    "COMMENT_KEYS",
    "Decision",
    "decision_from_record",
    "decision_to_record",
    "encode_dataset",
    "encode_patient",
    "parse_decision",
    "read_dataset_file",
]

COMMENT_KEYS: dict[str, str] = {"ED": "ED_Comments", "ES": "ES_Comments"}
"""Key of each phase's decision string inside a patient's object."""


def _normalise_word(word: str) -> str | None:
    """Canonical decision for a spelling found in the wild (``Accept``, ``fine-tune``), else None."""
    key = word.strip().lower().replace("-", "").replace("_", "").replace(" ", "")
    return key if key in names.DECISIONS else None


@dataclass(frozen=True)
class Decision:
    """A reviewer's decision on one patient and phase.

    Parameters
    ----------
    decision : str or None
        One of :data:`~cmrqc_widgets.names.DECISIONS` (spellings such as ``"Accept"`` or
        ``"fine-tune"`` are normalised), or None for no decision.
    comment : str
        Free text; may contain ``:``.
    """

    decision: str | None = None
    comment: str = ""

    def __post_init__(self) -> None:
        if self.decision is not None:
            if not isinstance(self.decision, str):
                raise InvalidNameError(f"Decision {self.decision!r} is not allowed; it must be a string.")
            blank = self.decision in ("", names.NO_DECISION)
            canonical = None if blank else _normalise_word(self.decision)
            if canonical is None and not blank:
                raise InvalidNameError(
                    f"Decision {self.decision!r} is not allowed; use one of "
                    f"{', '.join(names.DECISIONS)} or None."
                )
            object.__setattr__(self, "decision", canonical)
        if not isinstance(self.comment, str):
            raise TypeError(f"A comment must be a string, not {type(self.comment).__name__}.")

    @classmethod
    def parse(cls, text: str | None) -> Decision:
        """Read a stored ``"<decision>:<comment>"`` string, as written by either tool.

        ``""`` is no decision; ``":text"`` a comment without decision; ``"Accept:x"`` and
        ``"fine-tune:x"`` are read as ``accept`` and ``finetune``; a word before ``:`` that is not
        a decision is part of the comment (kept whole).
        """
        return parse_decision(text or "")

    def encode(self) -> str:
        """The canonical stored form: ``"<decision>:<comment>"``, ``":<comment>"``, or ``""``."""
        if self.decision is None:
            return f":{self.comment}" if self.comment else ""
        return f"{self.decision}:{self.comment}"

    def __bool__(self) -> bool:
        return self.decision is not None or bool(self.comment)


@functools.lru_cache(maxsize=65536)
def parse_decision(text: str) -> Decision:
    """:meth:`Decision.parse` of a string, cached (a dataset repeats the same few strings)."""
    word, colon, rest = text.partition(":")
    if not colon:
        decision = _normalise_word(word)
        return Decision(decision, "") if decision else Decision(None, text)
    if not word.strip():
        return Decision(None, rest)
    decision = _normalise_word(word)
    return Decision(decision, rest) if decision else Decision(None, text)


def decision_to_record(decision: Decision) -> dict[str, Any]:
    """A decision as stored in a journal line."""
    return {"decision": decision.decision, "comment": decision.comment}


def decision_from_record(obj: Any) -> Decision | None:
    """The decision of a journal line's ``previous``/``new`` object; None if it is not one."""
    if not isinstance(obj, dict):
        return None
    try:
        return Decision(obj.get("decision"), obj.get("comment") or "")
    except (InvalidNameError, TypeError):
        return None


def read_dataset_file(path: Path) -> dict[str, dict[str, Any]]:
    """Read and check a dataset file; :class:`DatasetError` naming the file if it is not one."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"Dataset file {path} does not exist.") from None
    except OSError as error:
        raise DatasetError(f"Dataset file {path} cannot be read ({error.strerror}).") from None
    duplicates: list[str] = []

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                duplicates.append(key)
            seen.add(key)
        return dict(pairs)

    try:
        data = json.loads(raw, object_pairs_hook=unique)
    except ValueError as error:
        raise DatasetError(
            f"Dataset file {path} is not valid JSON ({error}); it was left untouched."
        ) from None
    if duplicates:
        # json keeps the last copy; writing the file back would silently drop the other.
        raise DatasetError(
            f"Dataset file {path} lists {duplicates[0]!r} twice; it was left untouched "
            "(remove one copy, then open it again)."
        )
    if not isinstance(data, dict):
        raise DatasetError(
            f"Dataset file {path} is not a dataset: expected an object keyed by patient, "
            f"found {type(data).__name__}; it was left untouched."
        )
    for patient, obj in data.items():
        if not isinstance(obj, dict):
            raise DatasetError(
                f"Dataset file {path} is not a dataset: patient {patient!r} holds "
                f"{type(obj).__name__} instead of an object; it was left untouched."
            )
        for key in COMMENT_KEYS.values():
            if not isinstance(obj.get(key, ""), str):
                raise DatasetError(
                    f"Dataset file {path} is not a dataset: {key} of patient {patient!r} is "
                    f"{type(obj[key]).__name__} instead of text; it was left untouched."
                )
    return data


def encode_patient(patient: str, obj: Mapping[str, Any]) -> str:
    """One patient's entry exactly as ``json.dumps(data, indent=4)`` writes it (fast path for text)."""
    if not obj:
        return f"    {_quote(patient)}: {{}}"
    items = []
    for key, value in obj.items():
        if isinstance(value, str):
            text = _quote(value)
        else:
            text = json.dumps(value, indent=4).replace("\n", "\n        ")
        items.append(f"        {_quote(key)}: {text}")
    return f"    {_quote(patient)}: {{\n" + ",\n".join(items) + "\n    }"


def encode_dataset(data: Mapping[str, Mapping[str, Any]]) -> str:
    """The file text of ``data``: identical to ``json.dumps(data, indent=4)``, several times faster."""
    if not data:
        return "{}"
    return "{\n" + ",\n".join(encode_patient(p, obj) for p, obj in data.items()) + "\n}"
