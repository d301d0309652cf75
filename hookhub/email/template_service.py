"""Email templates as the API and the dashboard use them: saved only if they compile, previewed.

Saving compiles the subject, HTML and text (:class:`~hookhub.email.templates.EmailTemplate`):
a template that does not compile is refused with a 422 naming the field and line, and nothing
is written. Preview renders a saved template against a real contact (by id or email) and
params, as a recipient would get it, without tracking. Each call is one transaction; this
module never sends anything and never builds SQL (``store/email_templates.py`` does).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hookhub.core.contacts import normalize_email
from hookhub.crm.operations import CrmTx
from hookhub.crm.service import CrmService
from hookhub.email.headers import ascii_address
from hookhub.email.templates import EmailTemplate, RenderedEmail
from hookhub.errors import NotFound, ValidationFailed
from hookhub.records.email_templates import StoredTemplate
from hookhub.store.email_templates import EmailTemplateStore

REQUIRED = ("name", "subject", "html")
PREVIEW_TOKEN = "preview"


def check_address(value: str, field: str) -> str:
    """A sender or reply-to address: valid, and deliverable without SMTPUTF8."""
    try:
        email = normalize_email(value)
        ascii_address(email)
    except ValidationFailed as exc:
        raise ValidationFailed(exc.message, details={"field": field}) from exc
    return email


def _clean(fields: Mapping[str, Any]) -> dict[str, Any]:
    cleaned = dict(fields)
    for field in REQUIRED:
        if field in cleaned and cleaned[field] is None:
            raise ValidationFailed(f"{field} cannot be null.", details={"field": field})
    sender = cleaned.get("sender")
    if sender is not None:
        display = (sender.get("name") or "").strip() or None
        email = check_address(sender["email"], "sender.email")
        cleaned["sender"] = {"email": email, "name": display}
    if cleaned.get("reply_to") is not None:
        cleaned["reply_to"] = check_address(cleaned["reply_to"], "reply_to")
    if "tags" in cleaned:
        cleaned["tags"] = list(dict.fromkeys(cleaned["tags"] or []))
    return cleaned


def _compile(template: Mapping[str, Any]) -> EmailTemplate:
    return EmailTemplate.compile(template["subject"], template["html"], template.get("text"))


class TemplateService:
    def __init__(self, crm: CrmService, public_url: str) -> None:
        self.crm = crm
        self.db = crm.db
        self.unsubscribe_preview = f"{public_url.rstrip('/')}/t/u/{PREVIEW_TOKEN}"

    def create(self, fields: Mapping[str, Any]) -> StoredTemplate:
        cleaned = _clean(fields)
        _compile(cleaned)
        with self.db.write() as conn:
            return EmailTemplateStore(conn).create(cleaned, self.crm.clock())

    def get(self, template_id: int) -> StoredTemplate:
        with self.db.read() as conn:
            return _require(EmailTemplateStore(conn), template_id)

    def page(self, *, after_id: int | None, limit: int) -> list[StoredTemplate]:
        with self.db.read() as conn:
            return EmailTemplateStore(conn).page(after_id=after_id, limit=limit)

    def update(self, template_id: int, fields: Mapping[str, Any]) -> StoredTemplate:
        cleaned = _clean(fields)
        with self.db.write() as conn:
            store = EmailTemplateStore(conn)
            current = _require(store, template_id)
            if cleaned:
                merged = {"subject": current.subject, "html": current.html, "text": current.text}
                _compile({**merged, **cleaned})
                store.update(template_id, cleaned, self.crm.clock())
            return _require(store, template_id)

    def delete(self, template_id: int) -> None:
        with self.db.write() as conn:
            if not EmailTemplateStore(conn).delete(template_id):
                raise _missing(template_id)

    def preview(
        self, template_id: int, *, contact: str | int | None, params: Mapping[str, Any]
    ) -> RenderedEmail:
        """The template rendered for ``contact`` (none: every contact value renders empty)."""
        with self.crm.reader() as crm:
            stored = _require(EmailTemplateStore(crm.conn), template_id)
            data = _contact_data(crm, contact) if contact is not None else {}
        compiled = EmailTemplate.compile(stored.subject, stored.html, stored.text)
        return compiled.render(
            contact=data, params=params, unsubscribe_url=self.unsubscribe_preview
        )

    def preview_draft(
        self,
        source: Mapping[str, Any],
        *,
        contact: str | int | None,
        sample: Mapping[str, Any],
        params: Mapping[str, Any],
    ) -> RenderedEmail:
        """A draft (``subject``, ``html``, ``text``) rendered as :meth:`preview` renders a saved
        template, for ``contact`` or else the ``sample`` contact data (the dashboard's editor
        previews what it has not saved yet)."""
        compiled = _compile(source)
        data: Mapping[str, Any] = sample
        if contact is not None:
            with self.crm.reader() as crm:
                data = _contact_data(crm, contact)
        return compiled.render(
            contact=data, params=params, unsubscribe_url=self.unsubscribe_preview
        )


def _contact_data(crm: CrmTx, contact: str | int) -> dict[str, Any]:
    try:
        return crm.find_contact(contact).to_api()
    except NotFound as exc:
        raise ValidationFailed(
            f"No contact {contact!r} to preview with: give an existing contact's id or email.",
            details={"field": "contact", "contact": contact},
        ) from exc


def _missing(template_id: int) -> NotFound:
    return NotFound(f"No email template {template_id}.", details={"template_id": template_id})


def _require(store: EmailTemplateStore, template_id: int) -> StoredTemplate:
    found = store.get(template_id)
    if found is None:
        raise _missing(template_id)
    return found
