"""Credentials: salted slow hashes, legacy plaintext refused and migrated, atomic writes, lockout."""

from __future__ import annotations

import json
import os
import stat

import pytest

from cmrqc_widgets.errors import AuthError, InvalidNameError
from cmrqc_widgets.serve.auth import (
    add_user,
    check_login,
    hash_password,
    is_hashed,
    load_users,
    migrate_users,
    verify_password,
)
from cmrqc_widgets.serve.throttle import LoginThrottle


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_hash_verifies_and_is_self_describing():
    """A hash verifies its own password and names its scheme and cost parameters."""
    stored = hash_password("correct horse")
    assert stored.startswith("scrypt$16384$8$1$")
    assert is_hashed(stored)
    assert verify_password("correct horse", stored)


def test_wrong_password_refused():
    """A wrong, empty or differently-cased password does not verify."""
    stored = hash_password("Secret1")
    assert not verify_password("secret1", stored)
    assert not verify_password("", stored)
    assert not verify_password("Secret1 ", stored)


def test_salts_differ():
    """Hashing the same password twice gives two different strings that both verify."""
    first, second = hash_password("same"), hash_password("same")
    assert first != second
    assert verify_password("same", first) and verify_password("same", second)


def test_malformed_stored_values_never_verify():
    """Plaintext or a broken hash string is not a hash and never verifies."""
    for value in ["password", "", "scrypt$x$8$1$aa$bb", "scrypt$16384$8$1$!!$??", "md5$abc"]:
        assert not is_hashed(value)
        assert not verify_password(value, value)


def test_empty_password_cannot_be_hashed():
    """An empty password is refused with a clear error."""
    with pytest.raises(AuthError, match="non-empty"):
        hash_password("")


def test_add_user_stores_only_a_hash(tmp_path):
    """add_user writes a hash, never the password, and the user can log in."""
    add_user(tmp_path, "alice", "s3cret-pass")
    text = (tmp_path / "users.json").read_text()
    assert "s3cret-pass" not in text
    users = load_users(tmp_path)
    assert set(users) == {"alice"}
    assert is_hashed(users["alice"])
    assert check_login(tmp_path, "alice", "s3cret-pass")
    assert not check_login(tmp_path, "alice", "wrong")
    assert not check_login(tmp_path, "bob", "s3cret-pass")


def test_add_user_creates_private_folder_and_file(tmp_path):
    """The reviewer's folder is created with mode 0700 and users.json is 0600."""
    add_user(tmp_path, "alice", "pw-long-enough")
    folder = tmp_path / "users" / "alice"
    assert folder.is_dir()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "users.json").stat().st_mode) == 0o600


def test_add_user_keeps_others_and_replaces_password(tmp_path):
    """Adding a second user keeps the first; adding an existing user sets a new password."""
    add_user(tmp_path, "alice", "first-pass-1")
    add_user(tmp_path, "bob", "second-pass-2")
    add_user(tmp_path, "alice", "third-pass-3")
    assert list(load_users(tmp_path)) == ["alice", "bob"]
    assert check_login(tmp_path, "alice", "third-pass-3")
    assert not check_login(tmp_path, "alice", "first-pass-1")
    assert check_login(tmp_path, "bob", "second-pass-2")
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_plaintext_file_refused_with_migrate_hint(tmp_path):
    """A legacy plaintext users.json is refused, naming the file and telling the admin to migrate."""
    (tmp_path / "users.json").write_text(json.dumps({"alice": "password"}))
    with pytest.raises(AuthError, match=r"plaintext.*cmrqc user migrate"):
        load_users(tmp_path)
    with pytest.raises(AuthError, match="cmrqc user migrate"):
        add_user(tmp_path, "bob", "pw-long-enough")
    with pytest.raises(AuthError, match=r"users\.json"):
        check_login(tmp_path, "alice", "password")


def test_migrate_hashes_every_user_and_keeps_them(tmp_path):
    """migrate_users hashes each plaintext password in place; every user can still log in."""
    legacy = {"alice": "pa", "bob": "pb", "carol": "pc"}
    (tmp_path / "users.json").write_text(json.dumps(legacy, indent=4))
    assert migrate_users(tmp_path) == 3
    text = (tmp_path / "users.json").read_text()
    for password in legacy.values():
        assert f'"{password}"' not in text
    users = load_users(tmp_path)
    assert list(users) == list(legacy)
    assert all(is_hashed(v) for v in users.values())
    for name, password in legacy.items():
        assert check_login(tmp_path, name, password)
        assert (tmp_path / "users" / name).is_dir()
    assert migrate_users(tmp_path) == 0


def test_migrate_mixed_file_keeps_existing_hashes(tmp_path):
    """A file with some hashed and some plaintext entries: only the plaintext ones change."""
    hashed = hash_password("pa")
    (tmp_path / "users.json").write_text(json.dumps({"alice": hashed, "bob": "pb"}))
    assert migrate_users(tmp_path) == 1
    users = load_users(tmp_path)
    assert users["alice"] == hashed
    assert check_login(tmp_path, "bob", "pb")


def test_missing_file_means_no_users(tmp_path):
    """No users.json: no users, nothing to migrate, nobody logs in."""
    assert load_users(tmp_path) == {}
    assert migrate_users(tmp_path) == 0
    assert not check_login(tmp_path, "alice", "pw")


def test_corrupt_file_refused_and_untouched(tmp_path):
    """A corrupt users.json raises an error naming it and is never rewritten."""
    path = tmp_path / "users.json"
    path.write_bytes(b'{"alice": "scrypt$')
    before = path.read_bytes()
    with pytest.raises(AuthError, match=r"users\.json is not valid JSON"):
        load_users(tmp_path)
    with pytest.raises(AuthError, match="not valid JSON"):
        add_user(tmp_path, "bob", "pw-long-enough")
    with pytest.raises(AuthError, match="not valid JSON"):
        migrate_users(tmp_path)
    assert path.read_bytes() == before


def test_wrong_shape_refused(tmp_path):
    """A users.json that is not an object of strings is refused."""
    (tmp_path / "users.json").write_text(json.dumps(["alice", "pw"]))
    with pytest.raises(AuthError, match="JSON object"):
        load_users(tmp_path)


@pytest.mark.parametrize("name", ["../evil", "a/b", "", ".hidden", "x" * 65, "bob;rm", "alice\n"])
def test_hostile_names_refused(tmp_path, name):
    """add_user refuses names that could leave the data root or are malformed; nothing is written."""
    with pytest.raises(InvalidNameError, match="not allowed"):
        add_user(tmp_path, name, "pw-long-enough")
    assert not (tmp_path / "users.json").exists()


def test_migrate_refuses_hostile_legacy_name(tmp_path):
    """A legacy file with a hostile user name is refused before anything is written."""
    path = tmp_path / "users.json"
    path.write_text(json.dumps({"../../etc": "pw"}))
    before = path.read_bytes()
    with pytest.raises(InvalidNameError, match="not allowed"):
        migrate_users(tmp_path)
    assert path.read_bytes() == before


def test_default_root_from_environment(tmp_path, monkeypatch):
    """With no root given, CMRQC_ROOT decides where users.json lives."""
    monkeypatch.setenv("CMRQC_ROOT", os.fspath(tmp_path))
    add_user(None, "alice", "pw-long-enough")
    assert (tmp_path / "users.json").exists()
    assert set(load_users()) == {"alice"}


def test_throttle_backs_off_exponentially_per_user_and_address():
    """After max_failures a (user, address) waits 30 s, 60 s, 120 s ... up to the lockout; others do not."""
    clock = FakeClock()
    throttle = LoginThrottle(max_failures=3, window=600, lockout=300, clock=clock)
    for _ in range(2):
        throttle.failure("alice", "10.0.0.9")
        assert throttle.wait("alice", "10.0.0.9") == 0
    waits = []
    for _ in range(5):
        throttle.failure("alice", "10.0.0.9")
        waits.append(throttle.wait("alice", "10.0.0.9"))
    assert waits == [30, 60, 120, 240, 300]
    assert throttle.wait("bob", "10.0.0.9") == 0  # another user from there is not blocked
    assert throttle.wait("alice", "10.0.0.1") <= 60  # elsewhere, alice waits at most user_delay


def test_a_stranger_cannot_lock_a_reviewer_out():
    """Guesses from strangers' addresses delay alice a minute at most, and not at all where she logged in."""
    clock = FakeClock()
    throttle = LoginThrottle(max_failures=3, window=600, lockout=900, clock=clock)
    throttle.success("alice", "10.0.0.1")  # her usual computer
    for i in range(50):
        throttle.failure("alice", f"192.0.2.{i % 5}")
    assert throttle.wait("alice", "10.0.0.1") == 0
    assert 0 < throttle.wait("alice", "10.0.0.2") <= 60
    clock.now += 61
    assert throttle.wait("alice", "10.0.0.2") == 0
    assert throttle.wait("alice", "192.0.2.1") > 60  # the guessing addresses stay slowed down


def test_one_address_guessing_many_names_is_slowed():
    """An address failing for many different names waits too, though no single name reached the limit."""
    clock = FakeClock()
    throttle = LoginThrottle(max_failures=3, window=600, lockout=900, clock=clock)
    for i in range(12):
        throttle.failure(f"user{i}", "192.0.2.7")
    assert throttle.wait("someone-else", "192.0.2.7") >= 30
    assert throttle.wait("someone-else", "192.0.2.8") == 0


def test_throttle_survives_a_restart(tmp_path):
    """The book is kept in a 0600 file: a new throttle (a restarted hub) still makes the guesser wait."""
    clock = FakeClock()
    book = tmp_path / "login-throttle.json"
    first = LoginThrottle(max_failures=2, window=600, lockout=900, path=book, clock=clock)
    first.failure("alice", "192.0.2.7")
    first.failure("alice", "192.0.2.7")
    assert stat.S_IMODE(book.stat().st_mode) == 0o600
    restarted = LoginThrottle(max_failures=2, window=600, lockout=900, path=book, clock=clock)
    assert restarted.wait("alice", "192.0.2.7") == pytest.approx(30)


def test_throttle_forgets_failures_outside_window_and_on_success():
    """Failures older than the window do not count, and a success clears the pair's count."""
    clock = FakeClock()
    throttle = LoginThrottle(max_failures=3, window=60, lockout=300, clock=clock)
    throttle.failure("alice", "a")
    throttle.failure("alice", "a")
    clock.now += 61
    throttle.failure("alice", "a")
    assert throttle.wait("alice", "a") == 0
    throttle.failure("alice", "a")
    throttle.success("alice", "a")
    throttle.failure("alice", "a")
    assert throttle.wait("alice", "a") == 0


def test_throttle_rejects_nonsense_limit():
    """max_failures below 1 is refused."""
    with pytest.raises(ValueError, match="at least 1"):
        LoginThrottle(max_failures=0)


def make_authenticator(root, **config):
    """A CMRQCAuthenticator on ``root`` (skips when the hub extra is not installed)."""
    pytest.importorskip("jupyterhub")
    from cmrqc_widgets.serve.hub import CMRQCAuthenticator

    return CMRQCAuthenticator(data_root=str(root), **config)


def login(authenticator, name, password):
    """Run the authenticator's login check as the hub's login form would."""
    import asyncio

    return asyncio.run(authenticator.authenticate(None, {"username": name, "password": password}))


def test_authenticator_accepts_right_password_only(tmp_path):
    """The hub authenticator returns the name for the right password and None otherwise."""
    add_user(tmp_path, "alice", "pw-for-her-1")
    auth = make_authenticator(tmp_path)
    assert login(auth, "alice", "pw-for-her-1") == "alice"
    assert login(auth, "alice", "wrong") is None
    assert login(auth, "nobody", "pw-for-her-1") is None
    assert login(auth, "../alice", "pw-for-her-1") is None


def test_authenticator_sees_new_users_without_restart(tmp_path):
    """A reviewer added while the hub runs can log in at once and is allowed."""
    auth = make_authenticator(tmp_path)
    assert not auth.check_allowed("bob")
    add_user(tmp_path, "bob", "pw-for-him-2")
    assert login(auth, "bob", "pw-for-him-2") == "bob"
    assert auth.check_allowed("bob")
    assert not auth.check_allowed("carol")


def test_authenticator_locks_out_after_failures(tmp_path, caplog):
    """After max_failures wrong passwords even the right one is refused, and the log says why."""
    add_user(tmp_path, "alice", "pw-for-her-1")
    auth = make_authenticator(tmp_path, max_failures=3, lockout_seconds=600)
    for _ in range(3):
        assert login(auth, "alice", "guess") is None
    assert login(auth, "alice", "pw-for-her-1") is None
    assert "locked out" in caplog.text
    assert login(auth, "bob", "anything") is None


def test_authenticator_refuses_plaintext_file(tmp_path, caplog):
    """On a legacy plaintext users.json nobody logs in and the log carries the migrate hint."""
    (tmp_path / "users.json").write_text(json.dumps({"alice": "password"}))
    auth = make_authenticator(tmp_path)
    assert login(auth, "alice", "password") is None
    assert "cmrqc user migrate" in caplog.text
    assert not auth.check_allowed("alice")


def test_authenticator_keeps_name_case(tmp_path):
    """User names are not lower-cased: they name the reviewer's folder exactly."""
    auth = make_authenticator(tmp_path)
    assert auth.normalize_username("DrSmith") == "DrSmith"


def test_authenticator_default_root_from_environment(tmp_path, monkeypatch):
    """Without data_root config the authenticator reads CMRQC_ROOT."""
    pytest.importorskip("jupyterhub")
    from cmrqc_widgets.serve.hub import CMRQCAuthenticator

    monkeypatch.setenv("CMRQC_ROOT", str(tmp_path))
    assert CMRQCAuthenticator().data_root == str(tmp_path.resolve())


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short-pw", "too short"),
        ("", "too short"),
        ("1234567890", "most common"),
        ("Password123", "most common"),
        ("alice-is-me-2024", "contains the user name"),
    ],
)
def test_weak_passwords_are_refused(tmp_path, password, reason):
    """Short, common or name-containing passwords are refused in one sentence; nothing is stored."""
    with pytest.raises(AuthError, match="nothing was stored"):
        add_user(tmp_path, "alice", password)
    assert not (tmp_path / "users.json").exists()


def test_login_time_does_not_tell_who_exists(tmp_path):
    """An empty password for a known user, an unknown user and a wrong password all cost one scrypt check."""
    import time

    add_user(tmp_path, "alice", "correct-horse-1")

    def median(name: str, password: str) -> float:
        times = []
        for _ in range(5):
            started = time.perf_counter()
            assert not check_login(tmp_path, name, password)
            times.append(time.perf_counter() - started)
        return sorted(times)[2]

    wrong = median("alice", "wrong-password")
    for name, password in (("alice", ""), ("nobody", ""), ("nobody", "wrong-password")):
        assert median(name, password) > wrong / 3, (name, password)
