"""Email: templates, transactional and campaign sending over SMTP, tracking, bounces.

The flow: a cause (the API, an inbound rule, a campaign batch, an automation step) queues
emails in its own transaction (``hookhub.store.emails``); the email worker leases due ones,
renders and sends them over pooled SMTP connections (or captures them), and records each
outcome with :class:`~hookhub.email.ledger.EmailLedger`, which is also where reports of what
happened later (deliveries, bounces, complaints, opens, clicks, unsubscribes) are applied.
"""
