"""Production set-up (a): reviewers and leads as system users, and who may read which folder.

Guarantees (as root, after ``useradd NAME``; nothing here runs for the trial):

- ``users/<name>/`` and everything in it belong to the system user ``name``; nobody else may write
  there. Other reviewers may neither list nor read it.
- When the system group ``cmrqc-leads`` (or ``$CMRQC_LEADS_GROUP``) exists (``cmrqc user add
  NAME --lead --system`` creates it and adds the lead), every user folder belongs to that group,
  read-only: folders 2750 (new files inherit the group), files 0640, and ``users/`` lists for the
  group (0751). Without the group, folders are 0700 and files 0600.
- The data root stays traversable and not listable (0711): each server reaches its own folder;
  ``users.json`` (the hashes) stays root's, 0600, and so does the hub's state.

Files a reviewer's server creates later follow the folder (:func:`cmrqc_widgets.store.files.new_file_mode`):
0640 in a group-readable folder, 0600 in a private one.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
from pathlib import Path

from ..errors import AuthError
from ..names import check_username, resolve_root, user_folder

__all__ = [
    "LEADS_SYSTEM_GROUP",
    "give_to_system_user",
    "join_leads_group",
    "leads_system_group",
    "set_up_system_user",
]

LEADS_SYSTEM_GROUP = "cmrqc-leads"
"""System group of the leads: read-only access to every reviewer's folder."""


def leads_system_group() -> str:
    """The leads' system group: ``$CMRQC_LEADS_GROUP`` if set (one per data root), else ``cmrqc-leads``."""
    return os.environ.get("CMRQC_LEADS_GROUP") or LEADS_SYSTEM_GROUP


def _leads_gid() -> int | None:
    try:
        return grp.getgrnam(leads_system_group()).gr_gid
    except KeyError:
        return None


def _account(name: str) -> pwd.struct_passwd:
    check_username(name)
    try:
        account = pwd.getpwnam(name)
    except KeyError:
        raise AuthError(f"There is no system user {name!r}; create it first: useradd {name}.") from None
    if account.pw_uid == 0:
        raise AuthError(f"System user {name!r} is root; a reviewer must be an ordinary account.")
    return account


def give_to_system_user(root: str | os.PathLike[str] | None, name: str) -> Path:
    """Make ``<root>/users/<name>/`` and everything in it belong to the system user ``name``.

    Modes as the module says: 0700/0600, or 2750/0640 with group ``cmrqc-leads`` when that group
    exists. Run as root, after ``useradd NAME``. Returns the folder.

    Raises
    ------
    AuthError
        If there is no system user ``name``, it is root, or this process may not change owners.
    """
    account = _account(name)
    root_path = resolve_root(root)
    folder = user_folder(root_path, name)
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.mkdir(mode=0o700, exist_ok=True)
    leads = _leads_gid()
    gid = account.pw_gid if leads is None else leads
    folder_mode, file_mode = (0o700, 0o600) if leads is None else (0o2750, 0o640)
    try:
        for path in [folder, *folder.rglob("*")]:
            if path.is_symlink():
                continue  # never follow a link out of the folder
            os.chown(path, account.pw_uid, gid)
            os.chmod(path, folder_mode if path.is_dir() else file_mode)
        os.chmod(root_path, (root_path.stat().st_mode & 0o7777) | 0o711)
        users = folder.parent
        if leads is None:
            os.chmod(users, (users.stat().st_mode & 0o7777) | 0o711)
        else:
            os.chown(users, 0, leads)
            os.chmod(users, 0o751)  # leads list the reviewers; reviewers only pass through
    except PermissionError:
        raise AuthError(f"Only root can give {folder} to {name!r}; run this command as root.") from None
    return folder


def join_leads_group(root: str | os.PathLike[str] | None, name: str) -> list[Path]:
    """Add the system user ``name`` to ``cmrqc-leads`` (created if missing); open every user folder to it.

    Every folder under ``users/`` that belongs to an ordinary system user of the same name is given
    again (:func:`give_to_system_user`), now with the group's read access. Returns those folders.
    Takes effect in a lead's server started afterwards (group membership is read at login).
    """
    _account(name)
    for tool in ("groupadd", "usermod"):
        if shutil.which(tool) is None:
            raise AuthError(f"{tool} is missing; the leads group cannot be set up on this system.")
    group = leads_system_group()
    if _leads_gid() is None:
        subprocess.run(["groupadd", "--system", group], check=True, capture_output=True)
    subprocess.run(["usermod", "-a", "-G", group, name], check=True, capture_output=True)
    users = resolve_root(root) / "users"
    opened = []
    for folder in sorted(users.iterdir()) if users.is_dir() else []:
        try:
            owner = pwd.getpwuid(folder.stat().st_uid).pw_name
        except KeyError:
            continue
        if folder.is_dir() and not folder.is_symlink() and owner == folder.name and owner != "root":
            opened.append(give_to_system_user(root, folder.name))
    if user_folder(resolve_root(root), name) not in opened:
        opened.append(give_to_system_user(root, name))
    return opened


def set_up_system_user(root: str | os.PathLike[str] | None, name: str, *, lead: bool = False) -> str:
    """``cmrqc user add NAME --system [--lead]``: give the folder to ``name`` (a lead joins the group).

    Returns one sentence saying what was done.
    """
    said = ""
    if lead:
        opened = join_leads_group(root, name)
        group = leads_system_group()
        said = f"{name} is in the system group {group}, which reads {len(opened)} user folders. "
    folder = give_to_system_user(root, name)
    modes = "0700, files 0600" if _leads_gid() is None else "2750, files 0640, readable by the leads"
    return f"{said}{folder} now belongs to the system user {name} ({modes})."
