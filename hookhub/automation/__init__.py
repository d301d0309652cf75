"""Automations: triggers that enrol contacts, and the step machine that runs each enrollment
on durable timers (docs/DESIGN.md, "Automations")."""
