"""The lot's link to the cloud: MQTT 5 to the broker, HTTP catch-up of reservation changes.

The composition root builds one :class:`SyncClient` per lot, with the store, the lanes a remote
command may open (anything shaped like :class:`RemoteLane`) and the lanes' health for the
heartbeat (:func:`gate_agent.lane_health.lane_health`). The wire contract is
:mod:`parkgate_protocol` (and ``docs/protocol.md``).

Behind this face, each private module has one reason to change:

- ``_client``: :class:`SyncClient`: the threads, the MQTT callbacks, :class:`SyncStatus`;
- ``_session``: the MQTT 5 persistent session (client, last will, connect, offline status);
- ``_feed``: cloud → lot changes in sequence (reservations, access lists, the lot's policy),
  with HTTP catch-up;
- ``_outbox``: lot → cloud journal events, PUBACKs and the cloud's acks;
- ``_commands``: cloud → lot commands, obeyed once (remote open, audited);
- ``_dead_letters``: messages that broke the contract, kept in a bounded file.
"""

from gate_agent.sync._client import SyncClient, SyncStatus
from gate_agent.sync._commands import COMMANDS_STATE_KEY, RemoteLane
from gate_agent.sync._dead_letters import DEAD_LETTERS_FILE, DeadLetters
from gate_agent.sync._feed import LISTS_PENDING_KEY, SEQ_STATE_KEY

__all__ = [
    "COMMANDS_STATE_KEY",
    "DEAD_LETTERS_FILE",
    "LISTS_PENDING_KEY",
    "SEQ_STATE_KEY",
    "DeadLetters",
    "RemoteLane",
    "SyncClient",
    "SyncStatus",
]
