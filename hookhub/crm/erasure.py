"""Erasing a contact (``POST /contacts/{ref}/erase``): delete it and remove its personal data
from everywhere Hookhub keeps some.

Order matters. Messages about the contact are erased first, a page at a time, each page a
transaction of its own (a contact with 100,000 messages never holds one long transaction, and
a crash half way leaves the contact in place, so erasing again finishes the job). Then one
transaction locks and deletes the contact, erases what was written meanwhile, its emails,
inbound request bodies, custom events and enrollments, and writes ``contact.deleted`` with the
id only. Never log what is erased.
"""

from __future__ import annotations

import time
from collections import Counter

from hookhub.automation.enroll import end_enrollments
from hookhub.crm.service import CrmService
from hookhub.store.erasure import ErasureStore

PAGE = 500
LATE_MARGIN = 120.0
"""Seconds before the erasure began from which the final pass looks again: a message written
by a transaction that committed during the paged pass may have an id below the page cursor."""


class ContactEraser:
    def __init__(self, crm: CrmService, *, page: int = PAGE) -> None:
        self.crm = crm
        self.page = page

    def erase(self, ref: str | int) -> dict[str, int]:
        """Counts of what was removed, per kind; NotFound (404) for an unknown contact."""
        started = time.time()
        with self.crm.reader() as tx:
            contact = tx.find_contact(ref)
        counts: Counter[str] = Counter()
        cursor = ""
        while True:
            with self.crm.db.write() as conn:
                store = ErasureStore(conn)
                rows = store.messages_about(contact.id, after=cursor, limit=self.page)
                if not rows:
                    break
                erased, cancelled = store.erase_messages(contact.id, rows)
            counts["messages"] += erased
            counts["deliveries_cancelled"] += cancelled
            cursor = rows[-1][0]
        with self.crm.transaction() as tx:
            contact = tx.find_contact(contact.id, lock=True)  # 404 if deleted meanwhile
            store = ErasureStore(tx.conn)
            while rows := store.messages_about(
                contact.id, since=started - LATE_MARGIN, limit=self.page
            ):
                erased, cancelled = store.erase_messages(contact.id, rows)
                counts["messages"] += erased
                counts["deliveries_cancelled"] += cancelled
            ended = end_enrollments(tx, contact_id=contact.id, email="", reason="contact_deleted")
            counts["enrollments_ended"] = len(ended)
            store.forget_enrollment_triggers(contact.id)
            counts["emails"] = store.erase_emails(contact.id, contact.email)
            counts["inbound_requests"] = store.erase_inbound_requests(contact.id, contact.email)
            counts["events"] = store.delete_events(contact.id)
            tx.contacts.delete(contact.id)
            tx.outbox.emit("contact.deleted", {"contact_id": contact.id, "erased": True}, tx.now)
        return {
            "contact_id": contact.id,
            **{
                kind: counts[kind]
                for kind in (
                    "messages",
                    "deliveries_cancelled",
                    "emails",
                    "inbound_requests",
                    "events",
                    "enrollments_ended",
                )
            },
        }
