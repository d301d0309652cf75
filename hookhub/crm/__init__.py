"""Contacts, lists and custom events: services that change state and emit domain events."""
