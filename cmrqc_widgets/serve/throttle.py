"""Slowing down password guessing, per user and per client address, across hub restarts.

Guarantees
----------
- From one client address, after ``max_failures`` failed logins within ``window`` seconds for a
  user, that user cannot try again from there for ``first_delay`` seconds, doubling at every
  further failure up to ``lockout``.
- One address guessing many names is slowed the same way after ``4 * max_failures`` failures.
- Guesses from many addresses at one user slow that user down by at most ``user_delay`` seconds
  (a minute by default), and never at an address where the user has logged in before: a stranger
  cannot lock a reviewer out for long, nor at all from the reviewer's usual computer.
- With a ``path`` (the hub's state folder), the book survives a hub restart; the file is 0600.

Counters are forgotten ``window`` seconds after their last failure. Times are wall-clock seconds,
so a restart does not reset them.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["LoginThrottle"]


class LoginThrottle:
    """Exponential back-off of failed logins, per (user, address), per address and per user.

    Parameters
    ----------
    max_failures : int
        Failures for one user from one address before the first wait.
    window : float
        Seconds after the last failure at which a counter is forgotten.
    lockout : float
        Longest wait for a (user, address) pair or an address.
    first_delay : float
        First wait; each further failure doubles it (capped at ``lockout``).
    user_delay : float
        Longest wait imposed on a user by failures from addresses she has never logged in from.
    path : path, optional
        JSON file keeping the book across restarts (written 0600, atomically).
    clock : callable
        Current wall-clock time in seconds (injectable for tests).
    """

    _MAX_TRACKED = 10_000

    def __init__(
        self,
        max_failures: int = 5,
        window: float = 900,
        lockout: float = 900,
        *,
        first_delay: float = 30,
        user_delay: float = 60,
        path: str | os.PathLike[str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_failures < 1:
            raise ValueError("max_failures must be at least 1")
        self.max_failures = max_failures
        self.window = float(window)
        self.lockout = float(lockout)
        self.first_delay = float(first_delay)
        self.user_delay = float(user_delay)
        self.path = Path(path) if path is not None else None
        self._clock = clock
        self._mutex = threading.Lock()
        # key -> [failures, last failure time, blocked until]; "known:<user> <address>" -> [0, time, 0]
        self._book: dict[str, list[float]] = self._load()

    # -- asking
    def wait(self, user: str, address: str) -> float:
        """Seconds before ``user`` may try a password from ``address`` (0: now)."""
        now = self._clock()
        with self._mutex:
            keys = [f"pair:{user} {address}", f"addr:{address}"]
            if f"known:{user} {address}" not in self._book:
                keys.append(f"user:{user}")
            return max([0.0] + [self._book[k][2] - now for k in keys if k in self._book])

    # -- recording
    def failure(self, user: str, address: str) -> None:
        """Record a failed login of ``user`` from ``address``."""
        now = self._clock()
        with self._mutex:
            self._count(f"pair:{user} {address}", now, self.max_failures, self.lockout)
            self._count(f"addr:{address}", now, 4 * self.max_failures, self.lockout)
            self._count(f"user:{user}", now, self.max_failures, self.user_delay)
            if len(self._book) > self._MAX_TRACKED:
                self._prune(now)
            self._save()

    def success(self, user: str, address: str) -> None:
        """Record a login: forget the pair's and the user's failures, remember the address as hers."""
        now = self._clock()
        with self._mutex:
            self._book.pop(f"pair:{user} {address}", None)
            self._book.pop(f"user:{user}", None)
            self._book[f"known:{user} {address}"] = [0, now, 0]
            self._save()

    def _count(self, key: str, now: float, threshold: int, cap: float) -> None:
        failures, last, until = self._book.get(key, [0, now, 0])
        if now - last > self.window:
            failures = 0
        failures += 1
        if failures >= threshold:
            until = now + min(cap, self.first_delay * 2 ** (failures - threshold))
        self._book[key] = [failures, now, until]

    def _prune(self, now: float) -> None:
        # Many guessed names or addresses must not grow memory without bound.
        stale = [k for k, (_, last, until) in self._book.items() if now - last > self.window and now > until]
        for key in stale:
            del self._book[key]

    # -- persistence
    def _load(self) -> dict[str, list[float]]:
        if self.path is None:
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}  # missing or damaged: start afresh rather than refuse every login
        if not isinstance(data, dict):
            return {}
        return {
            k: [float(x) for x in v]
            for k, v in data.items()
            if isinstance(k, str) and isinstance(v, list) and len(v) == 3
        }

    def _save(self) -> None:
        if self.path is None:
            return
        fd, tmp = tempfile.mkstemp(prefix=".throttle.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(self._book, handle)
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
