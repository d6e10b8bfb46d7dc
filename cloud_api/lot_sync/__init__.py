"""The cloud's side of lot sync: the relay (reservation changes and commands, cloud → lots over
MQTT), the gate-event ingest (lots → cloud), the lots' catch-up page, remote commands, and lot
provisioning (device token and broker account, the broker's TLS files).

The wire contract (topics, messages) is the protocol package's; the broker settings are
:class:`cloud_api.settings.BrokerSettings`. Run by ``cloud-api sync``
(:func:`cloud_api.daemons.run_sync`).
"""

from cloud_api.lot_sync._broker_tls import BrokerTls, BrokerTlsError, make_broker_tls
from cloud_api.lot_sync._commands import DEFAULT_OPEN_TTL, issue_open, issue_resync
from cloud_api.lot_sync._feed import CATCH_UP_HORIZON, changes_page
from cloud_api.lot_sync._ingest import Ingest, IngestStats, store_message, subscription_filters
from cloud_api.lot_sync._models import GateEventRecord, IngestDeadLetter, LotCommand, LotStatus
from cloud_api.lot_sync._mqtt import connect, make_client
from cloud_api.lot_sync._provision import (
    RESERVED_USERNAMES,
    Provisioned,
    ProvisionError,
    provision_lot,
    sync_section,
)
from cloud_api.lot_sync._relay import Relay, RelayStats, wake_on_commit
from cloud_api.lot_sync._service import SyncService

__all__ = [
    "CATCH_UP_HORIZON",
    "DEFAULT_OPEN_TTL",
    "RESERVED_USERNAMES",
    "BrokerTls",
    "BrokerTlsError",
    "GateEventRecord",
    "Ingest",
    "IngestDeadLetter",
    "IngestStats",
    "LotCommand",
    "LotStatus",
    "ProvisionError",
    "Provisioned",
    "Relay",
    "RelayStats",
    "SyncService",
    "changes_page",
    "connect",
    "issue_open",
    "issue_resync",
    "make_broker_tls",
    "make_client",
    "provision_lot",
    "store_message",
    "subscription_filters",
    "sync_section",
    "wake_on_commit",
]
