"""Who is a lead: the leads group of users.json, backward compatible, and who reviews a dataset."""

from __future__ import annotations

import io
import json

import pytest

from cmrqc_widgets.cli.core import main
from cmrqc_widgets.errors import AuthError
from cmrqc_widgets.qc.roles import is_lead, read_groups, reviewers_of, team_members
from cmrqc_widgets.serve.auth import add_user, check_login, leads, load_users, migrate_users


def test_lead_group_lives_beside_the_hashes(tmp_path):
    """`add_user(..., lead=True)` adds a "#groups" entry; users and logins read as before."""
    add_user(tmp_path, "alice", "alpha-pass-1234")
    add_user(tmp_path, "carol", "gamma-pass-1234", lead=True)
    add_user(tmp_path, "carol", "newer-pass-5678")  # a new password keeps the role
    raw = json.loads((tmp_path / "users.json").read_text())
    assert raw["#groups"] == {"leads": ["carol"]}
    assert sorted(load_users(tmp_path)) == ["alice", "carol"]
    assert check_login(tmp_path, "carol", "newer-pass-5678") and not check_login(tmp_path, "#groups", "x")
    assert is_lead(tmp_path, "carol") and not is_lead(tmp_path, "alice") and leads(tmp_path) == ["carol"]
    assert team_members(tmp_path) == ["alice", "carol"]


def test_files_without_groups_and_legacy_files_still_work(tmp_path):
    """An old users.json has no leads; migrating a plaintext file keeps a group it has."""
    legacy = {"alice": "pw", "carol": "pw2", "#groups": {"leads": ["carol"]}}
    (tmp_path / "users.json").write_text(json.dumps(legacy))
    assert read_groups(tmp_path) == {"leads": ["carol"]}
    assert migrate_users(tmp_path) == 2
    assert check_login(tmp_path, "alice", "pw") and is_lead(tmp_path, "carol")
    hashed = json.loads((tmp_path / "users.json").read_text())["alice"]
    (tmp_path / "users.json").write_text(json.dumps({"bob": hashed}))
    assert read_groups(tmp_path) == {} and not is_lead(tmp_path, "bob")
    (tmp_path / "users.json").write_text(json.dumps({"bob": "x", "#groups": {"leads": "bob"}}))
    with pytest.raises(AuthError, match='malformed "#groups"'):
        is_lead(tmp_path, "bob")


def test_cli_user_add_lead_and_list(tmp_path, monkeypatch, capsys):
    """`cmrqc user add carol --lead` makes a lead; `cmrqc user list` marks them."""
    for name, extra in (("alice", []), ("carol", ["--lead"])):
        monkeypatch.setattr("sys.stdin", io.StringIO("long-enough-pass-9\n"))
        assert main(["user", "add", name, "--root", str(tmp_path), *extra]) == 0
    assert "Lead carol saved" in capsys.readouterr().out
    assert main(["user", "list", "--root", str(tmp_path)]) == 0
    assert capsys.readouterr().out.splitlines() == ["alice", "carol (lead)"]


def test_reviewers_of_a_dataset_are_those_with_the_file(tmp_path):
    """The reviewers of a dataset are the team members holding a file of that name."""
    for name in ("alice", "bob", "carol"):
        add_user(tmp_path, name, "team-pass-12345", lead=name == "carol")
    for name in ("alice", "bob"):
        (tmp_path / "users" / name / "study.json").write_text("{}")
    assert reviewers_of(tmp_path, "study.json") == ["alice", "bob"]


def test_the_hubs_word_makes_a_lead_only_for_that_user(tmp_path, monkeypatch):
    """CMRQC_LEAD (set by the hub's spawner) opens the lead's view for that user only, users.json unread."""
    from cmrqc_widgets.qc import roles
    from cmrqc_widgets.widgets.lead_state import LeadState

    add_user(tmp_path, "ann", "team-pass-12345")
    monkeypatch.setenv("CMRQC_LEAD", "lee")
    monkeypatch.setattr(roles, "read_groups", lambda root=None: pytest.fail("users.json was read"))
    assert roles.lead_by_hub("lee") and not roles.lead_by_hub("ann") and not roles.lead_by_hub("")
    assert LeadState(tmp_path, user="lee").allowed
    monkeypatch.delenv("CMRQC_LEAD")
    monkeypatch.setattr(roles, "read_groups", lambda root=None: {})
    assert not roles.lead_by_hub("lee")


def test_team_members_from_the_folders_when_users_json_is_closed(tmp_path, monkeypatch):
    """A lead's server that may not read users.json (production) lists the team from users/."""
    from cmrqc_widgets.qc import roles

    add_user(tmp_path, "ann", "team-pass-12345")
    add_user(tmp_path, "ben", "team-pass-12345")

    def closed(root):
        raise AuthError(f"Credentials file {root / 'users.json'} cannot be read (Permission denied).")

    monkeypatch.setattr(roles, "_users_json", closed)
    monkeypatch.setattr(roles.os, "access", lambda path, mode: False)
    assert team_members(tmp_path) == ["ann", "ben"]
    monkeypatch.setattr(roles.os, "access", lambda path, mode: True)  # readable but broken: say so
    with pytest.raises(AuthError, match="cannot be read"):
        team_members(tmp_path)
