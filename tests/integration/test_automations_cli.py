"""``hookhub automations list|show|enable|disable`` through the real command line, on each
backend: what it prints, and that enable and disable change what the API then answers."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from typer.testing import CliRunner

from hookhub import cli
from tests.conftest import SECRET_KEY

A = "/api/v1/automations"


def _runner() -> CliRunner:
    return CliRunner(env={"HOOKHUB_SECRET_KEY": SECRET_KEY, "COLUMNS": "200", "NO_COLOR": "1"})


def _setup(client: Any) -> dict[str, Any]:
    contact = client.post("/api/v1/contacts", json={"email": "ada@example.com"}).json()
    body = {
        "name": "Welcome series",
        "trigger": {"type": "manual"},
        "steps": [
            {"id": "pause", "wait": "2d"},
            {"id": "tag", "track_event": {"name": "welcomed"}},
        ],
    }
    created: dict[str, Any] = client.post(A, json=body).json()
    response = client.post(f"{A}/{created['id']}/enrollments", json={"contact": contact["id"]})
    assert response.status_code == 201, response.text
    return created


def test_list_show_disable_and_enable(client: Any, db_url: str) -> None:
    created = _setup(client)
    runner = _runner()

    listed = runner.invoke(cli.app, ["automations", "list", "--database-url", db_url])
    assert listed.exit_code == 0, listed.output
    assert "Welcome series" in listed.stdout
    assert "manual" in listed.stdout

    shown = runner.invoke(
        cli.app, ["automations", "show", str(created["id"]), "--database-url", db_url]
    )
    assert shown.exit_code == 0, shown.output
    assert f"automation {created['id']}: Welcome series" in shown.stdout
    assert "1 entered, 1 active, 0 completed, 0 exited, 0 failed" in shown.stdout
    pause_row = next(line for line in shown.stdout.splitlines() if "pause" in line)
    assert pause_row.split() == ["pause", "wait", "1", "1", "0", "0", "0", "0"]

    disabled = runner.invoke(
        cli.app, ["automations", "disable", str(created["id"]), "--database-url", db_url]
    )
    assert disabled.exit_code == 0, disabled.output
    assert "disabled" in disabled.stdout
    assert client.get(f"{A}/{created['id']}").json()["enabled"] is False

    enabled = runner.invoke(
        cli.app, ["automations", "enable", str(created["id"]), "--database-url", db_url]
    )
    assert enabled.exit_code == 0, enabled.output
    answer = client.get(f"{A}/{created['id']}").json()
    assert answer["enabled"] is True
    assert answer["version"] == 3


def test_an_unknown_automation_is_a_clear_error(db_url: str) -> None:
    runner = _runner()
    for command in ("show", "enable", "disable"):
        result = runner.invoke(cli.app, ["automations", command, "404", "--database-url", db_url])
        assert result.exit_code == 1, result.output
        assert "No automation 404." in result.output


def test_the_installed_command_runs_it(client: Any, db_url: str) -> None:
    created = _setup(client)
    done = subprocess.run(
        [sys.executable, "-m", "hookhub", "automations", "disable", str(created["id"])],
        env={
            "HOOKHUB_DATABASE_URL": db_url,
            "HOOKHUB_SECRET_KEY": SECRET_KEY,
            "COLUMNS": "200",
            "NO_COLOR": "1",
            "PATH": "/usr/bin:/bin",
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert f"automation {created['id']} (Welcome series) disabled" in done.stdout
    assert client.get(f"{A}/{created['id']}").json()["enabled"] is False
