"""The one exception of the wire contract."""

from __future__ import annotations

from pydantic import ValidationError

__all__ = ["ProtocolError", "describe_validation_error"]


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


def describe_validation_error(exc: ValidationError) -> str:
    """Field paths and messages only: pydantic's inputs (plates) stay out of logs."""
    parts = []
    for err in exc.errors(include_url=False, include_input=False, include_context=False)[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "(message)"
        parts.append(f"{loc}: {err['msg']}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")
