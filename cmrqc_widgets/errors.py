"""Exceptions a reviewer can read: each message is one sentence naming the file and the problem."""

from __future__ import annotations


class CmrqcError(Exception):
    """Base class of every error cmrqc_widgets raises on purpose."""


class CaseError(CmrqcError):
    """A case (image or label file of one patient and phase) cannot be read or is inconsistent."""


class DatasetError(CmrqcError):
    """A dataset file is missing, corrupt, or cannot be written."""


class InvalidNameError(CmrqcError, ValueError):
    """A user, dataset or phase name is not allowed (hostile or malformed)."""


class AuthError(CmrqcError):
    """A credentials file is in a state we refuse to use (for example legacy plaintext)."""
