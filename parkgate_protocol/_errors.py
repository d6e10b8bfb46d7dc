"""The one exception of the wire contract."""

from __future__ import annotations

__all__ = ["ProtocolError"]


class ProtocolError(ValueError):
    """A topic or payload that does not follow this contract.

    ``reason`` is a short code: ``bad_topic``, ``too_large``, ``bad_json``, ``not_an_object``,
    ``unsupported_version`` or ``invalid`` (a field failed validation; the message lists the
    fields and what was wrong, never their values).
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
