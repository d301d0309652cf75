"""Builds Hookhub's long-lived objects from settings: what the API, the CLI and workers share."""

from __future__ import annotations

from dataclasses import dataclass

from hookhub.config import Settings
from hookhub.crm.service import CrmService
from hookhub.keys import ApiKeys
from hookhub.metrics import Metrics
from hookhub.outbound.outbox import Outbox
from hookhub.store.database import Database


@dataclass
class Services:
    settings: Settings
    db: Database
    outbox: Outbox
    crm: CrmService
    keys: ApiKeys
    metrics: Metrics

    def close(self) -> None:
        self.db.dispose()


def build_services(settings: Settings) -> Services:
    db = Database(
        settings.database_url,
        pool_size=settings.db_pool_size,
        sqlite_synchronous=settings.sqlite_synchronous,
    )
    outbox = Outbox()
    metrics = Metrics()
    outbox.add_listener(metrics.count_messages)
    return Services(
        settings=settings,
        db=db,
        outbox=outbox,
        crm=CrmService(db, outbox),
        keys=ApiKeys(db),
        metrics=metrics,
    )
