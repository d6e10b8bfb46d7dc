"""The cloud's side of lot sync in one object: the relay (cloud → lots) and the ingest (lots →
cloud), sharing one sessionmaker. Run by ``cloud-api sync`` (:func:`cloud_api.daemons.run_sync`)."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from cloud_api.lot_sync._ingest import Ingest
from cloud_api.lot_sync._relay import Relay
from cloud_api.reported_times import DEFAULT_CLOCK_SKEW
from cloud_api.settings import BrokerSettings

__all__ = ["SyncService"]

log = logging.getLogger(__name__)


class SyncService:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        broker: BrokerSettings,
        *,
        poll_interval: float = 0.05,
        clock_skew: timedelta = DEFAULT_CLOCK_SKEW,
    ) -> None:
        self.relay = Relay(sessions, broker, poll_interval=poll_interval)
        self.ingest = Ingest(sessions, broker, clock_skew=clock_skew)

    def start(self) -> SyncService:
        self.relay.start()
        self.ingest.start()
        return self

    def stop(self) -> None:
        self.ingest.stop()
        self.relay.stop()
