"""Outbound webhooks: fan-out of outbox messages to endpoints and their delivery."""
