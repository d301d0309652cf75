"""Every automation's compiled definition, cached per process and indexed by what triggers it.

Loading parses each stored definition once (``definition.parse_definition``); the cache is
dropped when any process changes an automation (``ConfigKind.AUTOMATIONS``, wired in
``services.py``) and right after this process's own changes commit. Two ways to read it:

- :meth:`AutomationRegistry.index`: the whole index, possibly a moment stale (a change made in
  another process is seen within the config watcher's poll). Triggers use it: an automation
  created a fraction of a second ago may miss an event, never run a deleted one's steps.
- :meth:`AutomationRegistry.compiled`: one automation at the exact ``version`` a worker read in
  its own transaction (reloaded when the cache holds another), so an enrollment always runs the
  program its row was claimed under.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from sqlalchemy import Connection

from hookhub.automation.definition import Definition, parse_definition
from hookhub.core.origin import Origin
from hookhub.errors import HookhubError
from hookhub.records.automations import Automation
from hookhub.store.automations import AutomationStore
from hookhub.store.database import Database

log = logging.getLogger("hookhub.automation")


@dataclass(frozen=True, slots=True)
class Compiled:
    automation: Automation
    definition: Definition

    @property
    def id(self) -> int:
        return self.automation.id

    @property
    def origin(self) -> Origin:
        """What the automation's own steps, timers and date triggers cause."""
        return Origin("automation", self.automation.id, self.automation.name)


@dataclass
class Index:
    by_id: dict[int, Compiled] = field(default_factory=dict)
    by_trigger: dict[str, list[Compiled]] = field(default_factory=dict)
    """Enabled automations by trigger type (``contact.created``, ``date``, ``manual``...)."""
    waited_events: set[str] = field(default_factory=set)
    """Event names some automation's ``wait_for`` step waits for."""

    @property
    def empty(self) -> bool:
        return not self.by_id


def compile_automation(automation: Automation) -> Compiled | None:
    try:
        return Compiled(automation, parse_definition(automation.definition_body()))
    except HookhubError as exc:  # stored by an older version and no longer valid
        log.error(
            "automation.invalid", extra={"automation_id": automation.id, "error": exc.message}
        )
        return None


def build_index(automations: list[Automation]) -> Index:
    index = Index()
    for automation in automations:
        compiled = compile_automation(automation)
        if compiled is None:
            continue
        index.by_id[automation.id] = compiled
        for step in compiled.definition.program.steps.values():
            if step.kind == "wait_for":
                index.waited_events.add(step.spec.event_name)
        if automation.enabled:
            index.by_trigger.setdefault(compiled.definition.trigger.type, []).append(compiled)
    return index


class AutomationRegistry:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._index: Index | None = None
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        with self._lock:
            self._index = None

    def index(self, conn: Connection | None = None) -> Index:
        """The cached index, loaded (on ``conn`` if given, else a read) when dropped."""
        index = self._index
        if index is not None:
            return index
        if conn is not None:
            loaded = build_index(AutomationStore(conn).all())
        else:
            with self.db.read() as read_conn:
                loaded = build_index(AutomationStore(read_conn).all())
        with self._lock:
            self._index = loaded
        return loaded

    def compiled(self, conn: Connection, automation_id: int, version: int) -> Compiled | None:
        """The automation at ``version`` (what ``conn``'s transaction sees); None if deleted."""
        cached = self.index(conn).by_id.get(automation_id)
        if cached is not None and cached.automation.version == version:
            return cached
        automation = AutomationStore(conn).get(automation_id)
        if automation is None:
            return None
        self.invalidate()  # someone changed it: everyone's view is stale
        return compile_automation(automation)
