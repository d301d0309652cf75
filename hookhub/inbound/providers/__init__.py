"""The inbound sources Hookhub understands, by the name stored on each inbound webhook.

Adding a source is adding one module here (a :class:`Provider` subclass) and its fixtures.
"""

from __future__ import annotations

from hookhub.errors import ValidationFailed
from hookhub.inbound.providers.base import Provider, RawRequest
from hookhub.inbound.providers.calendly import CalendlyProvider
from hookhub.inbound.providers.generic import GenericProvider
from hookhub.inbound.providers.github import GitHubProvider
from hookhub.inbound.providers.mailgun import MailgunProvider
from hookhub.inbound.providers.postmark import PostmarkProvider
from hookhub.inbound.providers.sendgrid import SendGridProvider
from hookhub.inbound.providers.shopify import ShopifyProvider
from hookhub.inbound.providers.standard import StandardWebhooksProvider
from hookhub.inbound.providers.stripe import StripeProvider
from hookhub.inbound.providers.typeform import TypeformProvider

__all__ = ["PROVIDERS", "Provider", "RawRequest", "get_provider"]

# Providers are stateless, so one instance of each serves every request.
PROVIDERS: dict[str, Provider] = {
    provider.name: provider
    for provider in (
        StripeProvider(),
        ShopifyProvider(),
        CalendlyProvider(),
        TypeformProvider(),
        GitHubProvider(),
        StandardWebhooksProvider(),
        GenericProvider(),
        MailgunProvider(),
        PostmarkProvider(),
        SendGridProvider(),
    )
}


def get_provider(name: str) -> Provider:
    """The provider for source ``name``; ValidationFailed names the known sources."""
    try:
        return PROVIDERS[name]
    except KeyError:
        known = ", ".join(PROVIDERS)
        raise ValidationFailed(
            f"Unknown source {name!r}; expected one of {known}.",
            details={"sources": list(PROVIDERS)},
        ) from None
