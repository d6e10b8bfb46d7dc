"""Messages the lot could not use (in :mod:`gate_agent.sync`): a bounded JSON-lines file.

The file lives in the data directory (the device's disk already holds plates; the log never gets
them above debug). A changes page, a pushed change, a command or an ack that breaks the wire
contract lands here, as does a journal row that cannot be encoded.

The file is bounded twice: by size (rotated to ``.1`` past ``max_bytes``) and by age: the
retention job calls :meth:`DeadLetters.trim` to drop entries older than the retention period (a
dead-lettered reservation change carries a plate). Secrets never land in it: the value of any
``"secret"`` field (a booking-code key in an ``access_keys`` change) is redacted from the payload
text before it is written, whether or not the payload parses.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["DEAD_LETTERS_FILE", "DeadLetters"]

log = logging.getLogger(__name__)

DEAD_LETTERS_FILE = "sync-dead-letters.jsonl"  # in the data directory
# a "secret" field's string value, closed or cut off by truncation, escapes included
_SECRET_VALUE = re.compile(r'("secret"\s*:\s*)"(?:[^"\\]|\\.)*"?')
REDACTED = '"[redacted]"'


def redact(text: str) -> str:
    """``text`` with the value of every ``"secret"`` field replaced by ``"[redacted]"``."""
    return _SECRET_VALUE.sub(lambda m: m.group(1) + REDACTED, text)


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
        text = redact(text)
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

    def trim(self, older_than: datetime) -> int:
        """Drop entries stamped before ``older_than`` from the file and its ``.1``; returns how
        many. A line that cannot be read as an entry is dropped too."""
        dropped = 0
        with self._lock:
            for path in (self.path.with_name(self.path.name + ".1"), self.path):
                dropped += _trim_file(path, older_than)
        if dropped:
            log.info("dropped %d dead letter(s) older than %s", dropped, older_than.isoformat())
        return dropped

    def read(self) -> list[dict[str, object]]:
        """The current file's entries (tests and the status page)."""
        if not self.path.exists():
            return []
        with self.path.open(encoding="utf-8") as lines:
            return [json.loads(line) for line in lines if line.strip()]


def _recent(line: str, older_than: datetime) -> bool:
    try:
        return datetime.fromisoformat(json.loads(line)["at"]) >= older_than
    except (ValueError, KeyError, TypeError):
        return False


def _trim_file(path: Path, older_than: datetime) -> int:
    """Rewrite ``path`` (atomically) without its entries older than ``older_than``."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return 0
    kept = [line for line in lines if line.strip() and _recent(line, older_than)]
    dropped = sum(1 for line in lines if line.strip()) - len(kept)
    if not dropped:
        return 0
    if not kept:
        path.unlink()
        return dropped
    partial = path.with_name(path.name + ".trim")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write("\n".join(kept) + "\n")
    os.replace(partial, path)
    return dropped
