"""Hookhub: a self-hostable contacts platform built around inbound and outbound webhooks."""

__version__ = "0.1.0"
__all__ = ["__version__"]
