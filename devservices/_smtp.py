"""A real SMTP server in-process (aiosmtpd, a dev-only dependency) that keeps what it receives: the
tests' mail server. It can be stopped and started again on the same port to play "SMTP down"."""

from __future__ import annotations

import email
import email.policy
import logging
import threading
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from devservices._wait import free_port

__all__ = ["LocalInbox"]

log = logging.getLogger(__name__)


class _Collector:
    def __init__(self, inbox: LocalInbox) -> None:
        self._inbox = inbox

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self._inbox._received(message)
        return "250 Message accepted for delivery"


class LocalInbox:
    """``LocalInbox(port=0).start()``; ``messages`` holds every received message in order."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._lock = threading.Lock()
        self._messages: list[EmailMessage] = []
        self._controller: Controller | None = None

    def start(self) -> LocalInbox:
        if self._controller is not None:
            return self
        if self.port == 0:
            self.port = free_port(self.host)
        controller = Controller(_Collector(self), hostname=self.host, port=self.port)
        controller.start()
        self._controller = controller
        log.info("local SMTP inbox on %s:%s", self.host, self.port)
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def running(self) -> bool:
        return self._controller is not None

    def _received(self, message: EmailMessage) -> None:
        with self._lock:
            self._messages.append(message)

    @property
    def messages(self) -> list[EmailMessage]:
        with self._lock:
            return list(self._messages)

    def __enter__(self) -> LocalInbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
