"""A reviewer's datasets: the ``*.json`` files in ``<root>/users/<user>/``, listed afresh every time.

:class:`QCStore` lists, opens and creates dataset files (names checked, paths kept inside the
reviewer's folder); each opened file is a :class:`~cmrqc_widgets.store.dataset.Dataset`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from .. import names
from ..errors import DatasetError, InvalidNameError
from .dataset import FLUSH_DELAY, Dataset, patient_key
from .fileformat import encode_dataset
from .files import hold, lock_for, write_atomic
from .journal import start_new_file

__all__ = [
    "QCStore",
]


class QCStore:
    """The dataset files of one reviewer under a data root.

    Parameters
    ----------
    root : path, optional
        Data root; default ``$CMRQC_ROOT``, else :data:`~cmrqc_widgets.names.DEFAULT_ROOT`.
    user : str, optional
        Reviewer; default ``$JUPYTERHUB_USER``, ``$CMRQC_USER``, else the OS user.
    flush_delay : float or None
        Passed to every :class:`Dataset` opened from this store.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        user: str | None = None,
        *,
        flush_delay: float | None = FLUSH_DELAY,
    ) -> None:
        self.root = names.resolve_root(root)
        self.user = names.resolve_user(user)
        self.folder = names.user_folder(self.root, self.user)
        self.flush_delay = flush_delay

    def __repr__(self) -> str:
        return f"QCStore({str(self.root)!r}, user={self.user!r})"

    def path(self, name: str) -> Path:
        """Path of dataset ``name`` in the reviewer's folder; :class:`InvalidNameError` if unsafe."""
        names.check_dataset_name(name)
        folder = names.user_folder(self.root, self.user)
        return names.safe_path(folder, name)

    def datasets(self) -> list[str]:
        """Names of the reviewer's dataset files, sorted; listed afresh on every call."""
        try:
            entries = list(os.scandir(self.folder))
        except (FileNotFoundError, NotADirectoryError):
            return []
        found = []
        for entry in entries:
            if not entry.name.endswith(".json"):
                continue
            try:
                if self.path(entry.name).is_file():
                    found.append(entry.name)
            except InvalidNameError:
                continue
        return sorted(found)

    def open(self, name: str) -> Dataset:
        """Open dataset ``name``; :class:`DatasetError` if it is missing or not a dataset file."""
        path = self.path(name)
        if not path.is_file():
            raise DatasetError(f"Dataset file {path} does not exist.")
        return Dataset(path, self.user, name=name, flush_delay=self.flush_delay)

    def _make_folder(self) -> None:
        folder = names.user_folder(self.root, self.user)
        if not folder.is_dir():
            folder.parent.mkdir(parents=True, exist_ok=True)
            try:
                folder.mkdir(mode=0o700)
            except FileExistsError:
                return
            os.chmod(folder, 0o700)

    def create(
        self, name: str, patients: Iterable[str | os.PathLike[str]], *, exist_ok: bool = False
    ) -> Dataset:
        """Create dataset ``name`` with ``patients`` (no decisions yet) and open it.

        With ``exist_ok`` an existing file is opened unchanged; otherwise it is a :class:`DatasetError`.
        """
        self.path(name)  # refuse a bad name before creating any folder
        data = {patient_key(p): {"ED_Comments": "", "ES_Comments": ""} for p in patients}
        self._make_folder()
        path = self.path(name)
        with hold(lock_for(path)):
            if path.exists():
                if not exist_ok:
                    raise DatasetError(f"Dataset file {path} already exists.")
            else:
                write_atomic(path, encode_dataset(data))
                start_new_file(path)  # saves of a deleted dataset of that name stay in its history only
        return Dataset(path, self.user, name=name, flush_delay=self.flush_delay)
