"""Builds Hookhub's long-lived objects from settings: what the API, the CLI and workers share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from hookhub.automation.registry import AutomationRegistry
from hookhub.automation.service import AutomationService
from hookhub.automation.triggers import AutomationTriggers
from hookhub.config import Settings
from hookhub.crm.operations import CrmTx
from hookhub.crm.service import CrmService
from hookhub.inbound.service import InboundService
from hookhub.keys import ApiKeys
from hookhub.metrics import Metrics
from hookhub.outbound.endpoints import EndpointService
from hookhub.outbound.fanout import Fanout
from hookhub.outbound.messages import MessageService
from hookhub.outbound.outbox import Outbox
from hookhub.secretkey import load_keyring
from hookhub.store.config_versions import ConfigKind, ConfigWatcher
from hookhub.store.database import Database
from hookhub.store.secrets import SecretBox

if TYPE_CHECKING:
    from hookhub.automation.date_triggers import DateTriggerLoop
    from hookhub.automation.loop import AutomationLoop
    from hookhub.clock import Clock
    from hookhub.core.tracking import TrackingSigner
    from hookhub.email.tracking_processor import TrackingProcessor
    from hookhub.email.worker import EmailWorker
    from hookhub.outbound.worker import DeliveryWorker
    from hookhub.retention import RetentionLoop


@dataclass
class Services:
    settings: Settings
    db: Database
    outbox: Outbox
    crm: CrmService
    keys: ApiKeys
    metrics: Metrics
    endpoints: EndpointService
    inbound: InboundService
    messages: MessageService
    config_watch: ConfigWatcher
    """Drops caches when keys, endpoints or inbound webhooks change; started by long-running
    processes (serve, api, worker), so that a change elsewhere takes effect here at once."""
    automation_registry: AutomationRegistry
    """Compiled automation definitions, dropped when any process changes an automation."""
    automations: AutomationService
    """Automations as the API and the CLI change and read them."""

    def close(self) -> None:
        self.config_watch.stop()
        self.db.dispose()


def build_services(settings: Settings) -> Services:
    """Raises :class:`~hookhub.errors.SecretKeyError` when no secret key can be had."""
    db = Database(
        settings.database_url,
        pool_size=settings.db_pool_size,
        sqlite_synchronous=settings.sqlite_synchronous,
        sqlite_wal_autocheckpoint=settings.sqlite_wal_autocheckpoint,
    )
    try:
        db.use_secrets(SecretBox(load_keyring(settings)))
    except BaseException:
        db.dispose()
        raise
    outbox = Outbox()
    metrics = Metrics()
    outbox.add_listener(metrics.count_messages)
    outbox.add_fanout(Fanout(batch_window=settings.batch_window))
    keys = ApiKeys(db)
    config_watch = ConfigWatcher(db)
    config_watch.on_change(ConfigKind.API_KEYS, keys.invalidate)
    automation_registry = AutomationRegistry(db)
    outbox.add_fanout(AutomationTriggers(automation_registry, outbox))
    config_watch.on_change(ConfigKind.AUTOMATIONS, automation_registry.invalidate)
    return Services(
        settings=settings,
        db=db,
        outbox=outbox,
        crm=CrmService(db, outbox),
        keys=keys,
        metrics=metrics,
        endpoints=EndpointService(db, outbox, settings),
        inbound=InboundService(
            db,
            outbox,
            settings,
            crm_factory=lambda conn, now, facts=None, origin=None: CrmTx(
                conn, outbox.writer(conn, facts, origin=origin), now
            ),
            automations=automation_registry,
        ),
        messages=MessageService(db),
        config_watch=config_watch,
        automation_registry=automation_registry,
        automations=AutomationService(db, outbox, automation_registry),
    )


def build_worker(services: Services) -> DeliveryWorker:
    """A delivery worker with the real HTTP transport and the SSRF guard from settings."""
    from hookhub import __version__
    from hookhub.core.urlguard import DestinationPolicy
    from hookhub.outbound.http11 import Http11Transport
    from hookhub.outbound.sender import AiohttpTransport
    from hookhub.outbound.transport import Transport
    from hookhub.outbound.worker import DeliveryWorker

    settings = services.settings
    policy = DestinationPolicy(settings.allow_private_destinations)
    user_agent = f"hookhub/{__version__}"
    transport: Transport
    if settings.delivery_client == "aiohttp":
        transport = AiohttpTransport(
            policy=policy, limit=settings.worker_concurrency * 2, user_agent=user_agent
        )
    else:
        transport = Http11Transport(policy=policy, user_agent=user_agent)
    return DeliveryWorker(
        services.db, services.outbox, settings, transport, metrics=services.metrics
    )


def build_date_trigger_loop(services: Services) -> DateTriggerLoop:
    """Enrols contacts whose date attribute comes round (automations with a date trigger)."""
    from hookhub.automation.date_triggers import DateTriggerLoop, DateTriggerScan
    from hookhub.clock import SYSTEM_CLOCK

    scan = DateTriggerScan(services.db, services.outbox, services.automation_registry, SYSTEM_CLOCK)
    return DateTriggerLoop(scan)


def build_retention_loop(services: Services) -> RetentionLoop:
    """Purges on the retention settings; pauses between batches to let other writers in."""
    from hookhub.retention import RetentionLoop, RetentionService

    settings = services.settings
    service = RetentionService(services.db, settings, pause=0.01)
    return RetentionLoop(service, interval=settings.retention_interval)


def build_automation_loop(services: Services, clock: Clock | None = None) -> AutomationLoop:
    """The loop that runs automation steps as their enrollments fall due."""
    from hookhub.automation.engine import AutomationEngine
    from hookhub.automation.loop import AutomationLoop
    from hookhub.clock import SYSTEM_CLOCK

    settings = services.settings
    engine = AutomationEngine(
        services.db,
        services.outbox,
        services.automation_registry,
        clock or SYSTEM_CLOCK,
        email_from=settings.email_from,
        batch=settings.automation_batch,
        lease=settings.automation_lease,
    )
    return AutomationLoop(engine)


# -- email tracking ----------------------------------------------------------------------------


def build_tracking_signer(services: Services) -> TrackingSigner:
    """Signs and checks tracking tokens with keys derived from the secret key."""
    from hookhub.core.tracking import tracking_signer

    box = services.db.secrets
    assert box is not None, "build_services() gives the database its secret box"
    return tracking_signer(box.keyring)


def build_tracking_processor(services: Services) -> TrackingProcessor:
    """The loop that turns tracking hits into email events (``hookhub serve`` and ``worker``)."""
    from hookhub.email.tracking_processor import TrackingApplier, TrackingProcessor

    applier = TrackingApplier(services.db, services.outbox)
    return TrackingProcessor(applier, poll_interval=services.settings.poll_interval)


def build_email_worker(services: Services) -> EmailWorker:
    """An email worker: SMTP to HOOKHUB_SMTP_URL (or capture), rendering with tracking links
    signed by the secret key and DKIM when configured."""
    from hookhub.core.tracking import tracking_signer
    from hookhub.email.compose import Composer
    from hookhub.email.dkim import load_dkim_signer
    from hookhub.email.pool import transport_from_settings
    from hookhub.email.worker import EmailWorker

    settings = services.settings
    transport = transport_from_settings(settings)
    box = services.db.secrets
    composer = Composer(
        base_url=settings.base_url,
        signer=tracking_signer(box.keyring) if box is not None else None,
        dkim=load_dkim_signer(settings.dkim_domain, settings.dkim_selector, settings.dkim_key_file),
    )
    return EmailWorker(services.db, services.outbox, settings, transport, composer)
