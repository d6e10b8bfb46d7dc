"""The agent's operator web UI and JSON API (same process as the lanes).

- :func:`create_web_app` builds the FastAPI app over an agent's store and lanes.
- :class:`WebServer` runs it with uvicorn in a thread (started and stopped by the ``Agent``).
- :class:`SyncStatus` is what the sync-health panel reads from the sync client.
"""

from gate_agent.web.app import create_web_app
from gate_agent.web.context import SyncStatus, WebContext
from gate_agent.web.passwords import hash_password, verify_password
from gate_agent.web.server import WebServer, start_web_server

__all__ = [
    "SyncStatus",
    "WebContext",
    "WebServer",
    "create_web_app",
    "hash_password",
    "start_web_server",
    "verify_password",
]
