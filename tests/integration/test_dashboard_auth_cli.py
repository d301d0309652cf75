"""``hookhub users create|list|disable`` through the real command line, on each backend: the
password from standard input or a prompt (asked twice), never echoed; who can then sign in."""

from __future__ import annotations

from typer.testing import CliRunner

from hookhub import cli
from hookhub.services import Services
from hookhub.users import DashboardUsers, Role
from tests.conftest import SECRET_KEY

PASSWORD = "a long enough password"


def _runner() -> CliRunner:
    return CliRunner(env={"HOOKHUB_SECRET_KEY": SECRET_KEY, "COLUMNS": "200", "NO_COLOR": "1"})


def test_create_with_password_stdin_then_sign_in(services: Services, db_url: str) -> None:
    result = _runner().invoke(
        cli.app,
        ["users", "create", "Ada@Example.com", "--role", "admin", "--password-stdin",
         "--database-url", db_url],
        input=PASSWORD + "\n",
    )
    assert result.exit_code == 0, result.output
    assert "Created admin user ada@example.com" in result.output
    assert PASSWORD not in result.output
    users = DashboardUsers(services.db)
    user = users.authenticate("ada@example.com", PASSWORD)
    assert user is not None
    assert user.role is Role.ADMIN
    assert users.authenticate("ada@example.com", PASSWORD + "x") is None


def test_create_prompts_twice_and_refuses_a_mismatch(services: Services, db_url: str) -> None:
    runner = _runner()
    differ = runner.invoke(
        cli.app,
        ["users", "create", "bo@example.com", "--database-url", db_url],
        input=f"{PASSWORD}\n{PASSWORD}!\n",
    )
    assert differ.exit_code == 1
    assert "differ" in differ.output
    assert DashboardUsers(services.db).find_by_email("bo@example.com") is None
    same = runner.invoke(
        cli.app,
        ["users", "create", "bo@example.com", "--database-url", db_url],
        input=f"{PASSWORD}\n{PASSWORD}\n",
    )
    assert same.exit_code == 0, same.output
    assert PASSWORD not in same.output
    created = DashboardUsers(services.db).find_by_email("bo@example.com")
    assert created is not None
    assert created.role is Role.VIEWER  # the default


def test_short_passwords_and_duplicates_are_refused(services: Services, db_url: str) -> None:
    runner = _runner()
    args = ["users", "create", "cy@example.com", "--password-stdin", "--database-url", db_url]
    short = runner.invoke(cli.app, args, input="short\n")
    assert short.exit_code == 1
    assert "at least" in short.output
    assert runner.invoke(cli.app, args, input=PASSWORD + "\n").exit_code == 0
    again = runner.invoke(cli.app, args, input=PASSWORD + "\n")
    assert again.exit_code == 1
    assert "already exists" in again.output


def test_list_and_disable(services: Services, db_url: str) -> None:
    users = DashboardUsers(services.db)
    users.create("admin@example.com", PASSWORD, "admin")
    users.create("dee@example.com", PASSWORD, "viewer")
    runner = _runner()
    listed = runner.invoke(cli.app, ["users", "list", "--database-url", db_url])
    assert listed.exit_code == 0, listed.output
    assert "admin@example.com" in listed.output
    assert "dee@example.com" in listed.output
    disabled = runner.invoke(
        cli.app, ["users", "disable", "dee@example.com", "--database-url", db_url]
    )
    assert disabled.exit_code == 0, disabled.output
    assert users.authenticate("dee@example.com", PASSWORD) is None
    missing = runner.invoke(
        cli.app, ["users", "disable", "nobody@example.com", "--database-url", db_url]
    )
    assert missing.exit_code == 1
    last_admin = runner.invoke(
        cli.app, ["users", "disable", "admin@example.com", "--database-url", db_url]
    )
    assert last_admin.exit_code == 1
    assert "last admin" in last_admin.output
