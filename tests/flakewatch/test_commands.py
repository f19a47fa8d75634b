"""flakewatch's operator commands: createproject and createtoken."""

from __future__ import annotations

from django.core.management import call_command

from flakewatch.tokens import authenticate


def test_createproject_and_createtoken_print_a_working_token(db, capsys):
    call_command("createproject", "shop", "--name", "Shop", "--default-branch", "trunk")
    token = capsys.readouterr().out.strip().splitlines()[-1]
    found = authenticate(f"Bearer {token}", scopes=("upload",))
    assert found.project.default_branch == "trunk"
    call_command("createtoken", "shop", "--scope", "read")
    read = capsys.readouterr().out.strip().splitlines()[-1]
    assert authenticate(f"Bearer {read}", scopes=("upload",)) is None
    assert authenticate(f"Bearer {read}", scopes=("read",)).scope == "read"
