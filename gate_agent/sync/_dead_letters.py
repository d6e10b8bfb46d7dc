"""Messages the lot could not use (in :mod:`gate_agent.sync`): a bounded JSON-lines file.

The file lives in the data directory (the device's disk already holds plates; the log never gets
them above debug). A changes page, a pushed change, a command or an ack that breaks the wire
contract lands here, as does a journal row that cannot be encoded.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["DeadLetters"]

log = logging.getLogger(__name__)


class DeadLetters:
    """Messages we could not use, one JSON object a line, rotated to ``.1`` past ``max_bytes``."""

    def __init__(self, path: Path, *, max_bytes: int = 1 << 20, keep_chars: int = 4096) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.keep_chars = keep_chars
        self.count = 0
        self._lock = threading.Lock()

    def add(self, source: str, reason: str, payload: bytes | str) -> None:
        text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
        line = json.dumps(
            {
                "at": datetime.now(UTC).isoformat(),
                "source": source,
                "reason": reason,
                "payload": text[: self.keep_chars],
                "truncated": len(text) > self.keep_chars,
            }
        )
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.exists() and self.path.stat().st_size > self.max_bytes:
                os.replace(self.path, self.path.with_name(self.path.name + ".1"))
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as out:
                out.write(line + "\n")
            self.count += 1
        log.warning("dead-lettered a message from %s: %s", source, reason)

    def read(self) -> list[dict[str, object]]:
        """The current file's entries (tests and the status page)."""
        if not self.path.exists():
            return []
        with self.path.open(encoding="utf-8") as lines:
            return [json.loads(line) for line in lines if line.strip()]
