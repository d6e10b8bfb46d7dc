"""uvicorn in a thread of the agent process, started and stopped with the ``Agent``.

uvicorn's own access log is off (ours in :mod:`gate_agent.web.app` never logs query strings);
should someone turn it on, :class:`StripQueryFilter` keeps plates out of it anyway. A web server
that cannot bind is logged and left off: the lanes keep running without their status page. With
``web.tls_cert_file``/``web.tls_key_file`` it serves HTTPS (config refuses a non-loopback host
without them).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from gate_agent.config import WebConfig
from gate_agent.web.app import create_web_app
from gate_agent.web.context import AgentParts

__all__ = ["StripQueryFilter", "WebServer", "start_web_server"]

log = logging.getLogger(__name__)


class StripQueryFilter(logging.Filter):
    """Drops the query string from uvicorn access-log records (args: client, method, path, ...)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], args[2].split("?", 1)[0], *args[3:])
        return True


class WebServer:
    """Serves ``app`` on ``host:port`` from a daemon thread."""

    def __init__(
        self,
        app: FastAPI,
        host: str,
        port: int,
        *,
        tls_cert_file: Path | None = None,
        tls_key_file: Path | None = None,
    ) -> None:
        self.app = app
        self.host = host
        self.scheme = "https" if tls_cert_file is not None else "http"
        self.config = uvicorn.Config(
            app,
            host=host,
            port=port,
            ssl_certfile=tls_cert_file,
            ssl_keyfile=tls_key_file,
            access_log=False,
            log_config=None,  # the agent configures logging (stdout for journald)
            lifespan="off",
            timeout_graceful_shutdown=2,
            server_header=False,
        )
        self.server = uvicorn.Server(self.config)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        for server in getattr(self.server, "servers", []):
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        return int(self.config.port)

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> bool:
        """Start serving; True once listening, False if uvicorn gave up (e.g. port in use)."""
        access = logging.getLogger("uvicorn.access")
        if not any(isinstance(f, StripQueryFilter) for f in access.filters):
            access.addFilter(StripQueryFilter())
        self._thread = threading.Thread(target=self._serve, name="web", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started and self._thread.is_alive():
            if time.monotonic() > deadline:
                log.error("web server did not start within %.0f s", timeout)
                return False
            time.sleep(0.01)
        if not self.server.started:
            log.error("web server failed to listen on %s:%d", self.host, self.config.port)
            return False
        log.info("operator web UI on %s", self.url)
        return True

    def _serve(self) -> None:
        try:
            self.server.run()
        except SystemExit:  # uvicorn exits when it cannot bind; keep the agent alive
            log.error("web server stopped: could not serve on %s:%d", self.host, self.config.port)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving; safe to call twice."""
        if self._thread is None:
            return
        self.server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():
            self.server.force_exit = True
            self._thread.join(timeout)
        self._thread = None
        log.info("web server stopped")


def start_web_server(agent: AgentParts, web: WebConfig | None = None) -> WebServer | None:
    """Build and start the web UI for ``agent``; None when disabled or it could not start."""
    web = web or agent.config.web
    if not web.enabled:
        return None
    sync = getattr(agent, "sync", None)  # the sync client, once the agent has one
    server = WebServer(
        create_web_app(agent, web, sync=sync),
        web.host,
        web.port,
        tls_cert_file=web.tls_cert_file,
        tls_key_file=web.tls_key_file,
    )
    if not server.start():
        server.stop()
        return None
    return server
