"""``hookhub automations``: list automations, show one with its counts, pause or resume one.

They work through the services (``AutomationService``), not over HTTP, like the other command
groups: the same rules as the API apply. Disabling holds enrollments where they are; a worker
(``hookhub serve`` or ``hookhub worker``) takes them on once the automation is enabled again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from hookhub.automation.views import automation_to_api, step_order
from hookhub.cli_common import DatabaseUrl, console, err_console
from hookhub.cli_common import open_services as _services
from hookhub.cli_common import settings_from as _settings
from hookhub.errors import HookhubError
from hookhub.services import Services

automations_app = typer.Typer(
    help="Automations: list them, show one with its counts, enable or disable one.",
    no_args_is_help=True,
)
AutomationId = Annotated[int, typer.Argument(min=1, help="The automation's id.")]


def _run(database_url: str | None, work: Callable[[Services], Any]) -> Any:
    services = _services(_settings(database_url=database_url))
    try:
        return work(services)
    except HookhubError as exc:
        err_console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from exc
    finally:
        services.close()


def _trigger(trigger: dict[str, Any]) -> str:
    extra = ", ".join(f"{k}={v}" for k, v in trigger.items() if k != "type")
    return f"{trigger['type']} ({extra})" if extra else str(trigger["type"])


@automations_app.command("list")
def automations_list(
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 100,
    database_url: DatabaseUrl = None,
) -> None:
    """Every automation (oldest first): id, name, trigger, whether enabled."""
    items = _run(
        database_url, lambda services: services.automations.page(after_id=None, limit=limit)
    )
    table = Table("id", "name", "trigger", "enabled", "steps", "version")
    for automation in items:
        shown = automation_to_api(automation)
        table.add_row(
            str(shown["id"]),
            shown["name"],
            _trigger(shown["trigger"]),
            "yes" if shown["enabled"] else "no (paused)",
            str(sum(1 for _ in step_order(shown["steps"]))),
            str(shown["version"]),
        )
    console.print(table)


@automations_app.command("show")
def automations_show(automation_id: AutomationId, database_url: DatabaseUrl = None) -> None:
    """One automation: its trigger, its enrollments by status, and each step's counts."""
    shown = _run(database_url, lambda services: services.automations.get(automation_id))
    _print(shown)


def _print(shown: dict[str, Any]) -> None:
    counts = shown["counts"]
    console.print(f"automation {shown['id']}: {shown['name']}")
    console.print(f"trigger: {_trigger(shown['trigger'])}")
    if shown["filter"]:
        console.print(f"filter: {shown['filter']}")
    console.print(
        f"enabled: {'yes' if shown['enabled'] else 'no (paused)'}, reentry: {shown['reentry']},"
        f" version {shown['version']}"
    )
    console.print(
        "enrollments: "
        + ", ".join(f"{counts[k]} {k}" for k in ("entered", "active", "completed", "exited"))
        + f", {counts['failed']} failed"
    )
    # Compact, so that the step ids and kinds fit an 80-column terminal uncut.
    table = Table(
        "step",
        "kind",
        "entered",
        "waiting",
        "completed",
        "skipped",
        "failed",
        "exited",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    for step_id, step in counts["steps"].items():
        table.add_row(
            step_id,
            step["kind"] or "",
            *(
                str(step[k])
                for k in ("entered", "waiting", "completed", "skipped", "failed", "exited")
            ),
        )
    console.print(table)


def _set_enabled(automation_id: int, enabled: bool, database_url: str | None) -> None:
    shown = _run(
        database_url, lambda services: services.automations.set_enabled(automation_id, enabled)
    )
    state = "enabled" if enabled else "disabled: its enrollments hold where they are"
    console.print(
        f"automation {shown['id']} ({shown['name']}) {state}; {shown['counts']['active']} active"
    )


@automations_app.command("enable")
def automations_enable(automation_id: AutomationId, database_url: DatabaseUrl = None) -> None:
    """Resume an automation: its held enrollments go on, its trigger enrols again."""
    _set_enabled(automation_id, True, database_url)


@automations_app.command("disable")
def automations_disable(automation_id: AutomationId, database_url: DatabaseUrl = None) -> None:
    """Pause an automation: its enrollments hold where they are and its trigger enrols nobody."""
    _set_enabled(automation_id, False, database_url)
