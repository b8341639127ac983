"""Reviewer credentials: salted slow password hashes in ``<root>/users.json`` and the password rules.

The old app kept plaintext ``{"alice": "password"}``. We read that format only to migrate it
(:func:`migrate_users`) and never write it: :func:`load_users` refuses a file that still holds
a plaintext password, so a hub can never start on one by mistake.

A stored password is one self-describing string::

    scrypt$<n>$<r>$<p>$<salt, base64>$<hash, base64>

so the cost parameters can be raised later without breaking older entries. The ``leads`` group
is one more entry, ``"#groups": {"leads": ["carol"]}`` (see :mod:`cmrqc_widgets.qc.roles`); a
file without it reads as before. Every write of
``users.json`` holds a file lock, writes a temporary file in the same folder, fsyncs it and
replaces the old file atomically: a crash never leaves a truncated credentials file.

This module is pure logic (standard library and :mod:`filelock`); the JupyterHub authenticator
in :mod:`cmrqc_widgets.serve.hub` and the ``cmrqc user`` commands build on it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import tempfile
from pathlib import Path

from filelock import FileLock

from ..errors import AuthError
from ..names import check_username, resolve_root, user_folder
from ..qc.roles import GROUPS_KEY, LEADS

__all__ = [
    "USERS_FILE",
    "add_user",
    "check_login",
    "hash_password",
    "is_hashed",
    "leads",
    "load_users",
    "migrate_users",
    "users_file",
    "verify_password",
]

USERS_FILE = "users.json"
"""Name of the credentials file inside the data root."""

_SCHEME = "scrypt"
# n=2**14, r=8 costs ~16 MB and a few tens of ms per check: slow for a guesser, quick for a login.
_N, _R, _P = 2**14, 8, 1
_SALT_BYTES = 16
_HASH_BYTES = 32
_MAXMEM = 64 * 1024 * 1024
_LOCK_TIMEOUT = 30.0


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=dklen, maxmem=_MAXMEM)


def hash_password(password: str) -> str:
    """Return a salted scrypt hash of ``password`` as a self-describing string.

    Parameters
    ----------
    password : str
        The password; must not be empty.

    Returns
    -------
    str
        ``"scrypt$n$r$p$salt$hash"`` with base64 salt and hash; a new random salt every call.
    """
    if not isinstance(password, str) or not password:
        raise AuthError("A password must be a non-empty string.")
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = _scrypt(password, salt, _N, _R, _P, _HASH_BYTES)
    return f"{_SCHEME}${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def _parse(stored: str) -> tuple[int, int, int, bytes, bytes] | None:
    """Split a stored hash into its parts, or None if it is not one of ours."""
    if not isinstance(stored, str):
        return None
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != _SCHEME:
        return None
    try:
        n, r, p = (int(x) for x in parts[1:4])
        salt = base64.b64decode(parts[4], validate=True)
        digest = base64.b64decode(parts[5], validate=True)
    except (ValueError, binascii.Error):
        return None
    if n < 2 or n & (n - 1) or r < 1 or p < 1 or not salt or not digest:
        return None
    return n, r, p, salt, digest


def is_hashed(value: str) -> bool:
    """True if ``value`` is a password hash written by :func:`hash_password`, False for plaintext."""
    return _parse(value) is not None


def verify_password(password: str, stored: str) -> bool:
    """Check ``password`` against a stored hash, in constant time.

    Returns False (never raises) for a wrong password, an empty one, or a malformed stored value.
    """
    parsed = _parse(stored)
    usable = parsed is not None and isinstance(password, str) and bool(password)
    if not usable:
        # Same work as a real check: the answer's timing must not tell an empty password, an
        # unknown user or a malformed entry from a wrong password.
        parsed = _parse(_dummy_hash())
        password = "-"
    n, r, p, salt, digest = parsed
    try:
        candidate = _scrypt(password, salt, n, r, p, len(digest))
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(candidate, digest) and usable


# A fixed hash to check against when the user does not exist, so that the time taken does not
# tell a guesser which user names are real.
_DUMMY_HASH: str | None = None


def _dummy_hash() -> str:
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = hash_password(secrets.token_urlsafe(16))
    return _DUMMY_HASH


def users_file(root: str | os.PathLike[str] | None = None) -> Path:
    """Path of the credentials file, ``<root>/users.json``."""
    return resolve_root(root) / USERS_FILE


def _read_file(path: Path) -> tuple[dict[str, str], dict[str, list[str]]]:
    """users.json as ({name: stored value}, {group: members}); empty if missing; AuthError if unreadable."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}, {}
    except OSError as exc:
        raise AuthError(f"Credentials file {path} cannot be read: {exc.strerror or exc}.") from exc
    try:
        data = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise AuthError(f"Credentials file {path} is not valid JSON (line {exc.lineno}).") from exc
    if not isinstance(data, dict):
        raise AuthError(f"Credentials file {path} must be a JSON object of user name to password hash.")
    groups = data.pop(GROUPS_KEY, {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise AuthError(f"Credentials file {path} must be a JSON object of user name to password hash.")
    if not isinstance(groups, dict) or not all(
        isinstance(m, list) and all(isinstance(n, str) for n in m) for m in groups.values()
    ):
        raise AuthError(f'Credentials file {path} has a malformed "{GROUPS_KEY}" entry.')
    return data, groups


def _read_raw(path: Path) -> dict[str, str]:
    """Read users.json as {name: stored value}; {} if missing; AuthError if unreadable."""
    return _read_file(path)[0]


def _write_atomic(path: Path, users: dict[str, str], groups: dict[str, list[str]] | None = None) -> None:
    """Write users.json (and its groups) via a temp file in the same folder, fsync, os.replace; 0600."""
    content: dict[str, object] = dict(users)
    if groups:
        content[GROUPS_KEY] = groups
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(content, handle, indent=4)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    # Make the rename itself durable.
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _lock(path: Path) -> FileLock:
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path) + ".lock", timeout=_LOCK_TIMEOUT)


def _plaintext_names(users: dict[str, str]) -> list[str]:
    return sorted(name for name, value in users.items() if not is_hashed(value))


def _migrate_hint(path: Path) -> str:
    return f"run `cmrqc user migrate --root {path.parent}` to hash them"


def load_users(root: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """Read ``<root>/users.json`` as ``{name: password hash}``.

    Parameters
    ----------
    root : path-like, optional
        Data root (default: ``CMRQC_ROOT``, then the documented default).

    Returns
    -------
    dict
        Empty if the file does not exist.

    Raises
    ------
    AuthError
        If the file is unreadable, not a JSON object of strings, or still holds a plaintext
        password (legacy format): the message tells the admin to run ``cmrqc user migrate``.
    """
    path = users_file(root)
    users = _read_raw(path)
    plain = _plaintext_names(users)
    if plain:
        raise AuthError(
            f"Credentials file {path} holds plaintext passwords for {len(plain)} user(s); "
            f"{_migrate_hint(path)}."
        )
    return users


def _make_user_folder(root: Path, name: str) -> Path:
    folder = user_folder(root, name)
    folder.parent.mkdir(parents=True, exist_ok=True)
    if not folder.exists():
        folder.mkdir(mode=0o700)
        # mkdir's mode is filtered by the umask; make sure it really is private.
        os.chmod(folder, 0o700)
    return folder


MIN_PASSWORD_LENGTH = 10
"""Shortest password ``cmrqc user add`` accepts (NIST SP 800-63B asks for at least 8)."""


def _common_passwords() -> frozenset[str]:
    text = (Path(__file__).parent / "common_passwords.txt").read_text(encoding="utf-8")
    return frozenset(line.strip().lower() for line in text.splitlines() if line and line[0] != "#")


def check_password(name: str, password: str) -> None:
    """Refuse (:class:`AuthError`, one sentence) a short, common or name-derived password."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise AuthError(
            f"The password is too short: use at least {MIN_PASSWORD_LENGTH} characters; nothing was stored."
        )
    if password.lower() in _common_passwords() or name.lower() in password.lower():
        raise AuthError(
            "The password is one of the most common ones or contains the user name; choose another; "
            "nothing was stored."
        )


def add_user(root: str | os.PathLike[str] | None, name: str, password: str, *, lead: bool = False) -> None:
    """Add a reviewer, or set a new password for an existing one.

    The password is stored only as a salted scrypt hash. The write is atomic and holds a file
    lock, so two admins adding users at once never lose one. The reviewer's folder
    ``<root>/users/<name>/`` is created with mode 0700 if missing. With ``lead`` the user also
    joins the ``leads`` group (never removed here).

    Raises
    ------
    InvalidNameError
        If ``name`` is not a safe user name.
    AuthError
        If the password is shorter than 10 characters, common or contains the user name, or the
        existing file is corrupt or still in plaintext.
    """
    check_username(name)
    check_password(name, password)
    stored = hash_password(password)
    path = users_file(root)
    with _lock(path):
        users, groups = _read_file(path)
        if _plaintext_names(users):
            raise AuthError(
                f"Credentials file {path} holds plaintext passwords; {_migrate_hint(path)} "
                "before adding users."
            )
        users[name] = stored
        if lead and name not in groups.get(LEADS, []):
            groups[LEADS] = [*groups.get(LEADS, []), name]
        _write_atomic(path, users, groups)
    _make_user_folder(path.parent, name)


def leads(root: str | os.PathLike[str] | None = None) -> list[str]:
    """Members of the ``leads`` group of ``users.json``."""
    return list(_read_file(users_file(root))[1].get(LEADS, []))


def migrate_users(root: str | os.PathLike[str] | None = None) -> int:
    """Hash every plaintext password of a legacy ``users.json`` in place, atomically.

    Entries already hashed are kept as they are, as is the order of users; missing reviewer
    folders are created with mode 0700.

    Returns
    -------
    int
        How many passwords were hashed (0 if the file was already migrated or is missing).

    Raises
    ------
    AuthError
        If the file is corrupt or holds an empty password (which cannot be migrated).
    """
    path = users_file(root)
    with _lock(path):
        users, groups = _read_file(path)
        for name in users:
            check_username(name)
        plain = _plaintext_names(users)
        for name in plain:
            if not users[name]:
                raise AuthError(f"Credentials file {path} has an empty password for user {name!r}.")
        if not plain:
            return 0
        migrated = {name: (hash_password(value) if name in plain else value) for name, value in users.items()}
        _write_atomic(path, migrated, groups)
    for name in users:
        _make_user_folder(path.parent, name)
    return len(plain)


def check_login(root: str | os.PathLike[str] | None, name: str, password: str) -> bool:
    """True if ``name`` is a known reviewer and ``password`` is theirs.

    An unknown user costs the same hash computation as a known one. Raises :class:`AuthError`
    if the credentials file is unusable (see :func:`load_users`).
    """
    stored = load_users(root).get(name) if isinstance(name, str) else None
    if stored is None:
        verify_password(password or "x", _dummy_hash())
        return False
    return verify_password(password, stored)
