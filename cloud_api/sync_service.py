"""The cloud's side of lot sync in one object: the relay (cloud → lots) and the ingest (lots →
cloud), sharing one sessionmaker. Run by ``cloud-api sync`` (or next to the outbox worker)."""

from __future__ import annotations

import logging
import signal
import threading

from sqlalchemy.orm import Session, sessionmaker

from cloud_api.ingest import Ingest
from cloud_api.mqtt import BrokerSettings
from cloud_api.relay import Relay

__all__ = ["SyncService", "run_sync"]

log = logging.getLogger(__name__)


class SyncService:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        broker: BrokerSettings,
        *,
        poll_interval: float = 0.05,
    ) -> None:
        self.relay = Relay(sessions, broker, poll_interval=poll_interval)
        self.ingest = Ingest(sessions, broker)

    def start(self) -> SyncService:
        self.relay.start()
        self.ingest.start()
        return self

    def stop(self) -> None:
        self.ingest.stop()
        self.relay.stop()


def run_sync(database_url: str, broker: BrokerSettings, *, poll_interval: float = 0.05) -> int:
    """Run relay and ingest until SIGTERM or SIGINT."""
    from cloud_api.db import make_engine, make_sessionmaker

    engine = make_engine(database_url)
    service = SyncService(make_sessionmaker(engine), broker, poll_interval=poll_interval)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    service.start()
    log.info("sync running against %s:%d", broker.host, broker.port)
    stop.wait()
    service.stop()
    engine.dispose()
    return 0
