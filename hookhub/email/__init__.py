"""Email: templates, transactional and campaign sending over SMTP, tracking, bounces.

The flow: a cause (the API, an inbound rule, a campaign batch, an automation step) queues
emails in its own transaction (``hookhub.store.emails``); the email worker leases due ones,
renders and sends them over pooled SMTP connections (or captures them), and records each
outcome with :class:`~hookhub.email.ledger.EmailLedger`, which is also where reports of what
happened later (deliveries, bounces, complaints, opens, clicks, unsubscribes) are applied.

The rendering layer every sender calls is pure (no database, network or clock it is not
handed) and exported here: templates compiled once and rendered per recipient in a sandbox
(``templates``), the text part from the HTML (``htmltext``), tracked links (``links``) and the
message bytes (``mime``); ``dkim`` signs them when configured.
"""

from hookhub.email.htmltext import html_to_text
from hookhub.email.links import TrackedHtml, track_links
from hookhub.email.mime import Address, OutgoingMessage, build_message, make_message_id
from hookhub.email.templates import EmailTemplate, RenderedEmail, TemplateCache

__all__ = [
    "Address",
    "EmailTemplate",
    "OutgoingMessage",
    "RenderedEmail",
    "TemplateCache",
    "TrackedHtml",
    "build_message",
    "html_to_text",
    "make_message_id",
    "track_links",
]
