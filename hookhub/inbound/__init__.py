"""Inbound webhooks: receiver, one adapter module per provider, rule engine."""
