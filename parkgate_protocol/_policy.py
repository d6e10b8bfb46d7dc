"""A lot's policy: the rules every lane of the lot obeys, set in the cloud and pushed to the gate.

The cloud keeps every version (``PUT /lots/{lot_id}/policy``); each change gets the next
``version`` and travels on the lot's change feed as a ``policy`` change, whose ``policy`` field is
the raw object. The gate parses it with :func:`parse_policy`: a policy it cannot apply (a newer
``schema``, a bad value) is refused with a :class:`ProtocolError`, and the gate keeps the last good
one (and says so in its health), while the change itself still advances the feed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from parkgate_protocol._enums import AntiPassbackMode, OfflineExit
from parkgate_protocol._errors import ProtocolError, describe_validation_error
from parkgate_protocol._tariff import Tariff, VehicleTariff

__all__ = ["POLICY_SCHEMA", "LotPolicy", "default_tariff", "parse_policy"]

POLICY_SCHEMA: Final = 1


def default_tariff() -> Tariff:
    """€2.50 per started hour, €15 a day: what a lot charges before its operator sets a tariff."""
    return Tariff(vehicles={"car": VehicleTariff(rate_cents=250, daily_max_cents=1500)})


class LotPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = Field(
        POLICY_SCHEMA, ge=1, alias="schema", description="Policy format; a gate refuses newer."
    )
    version: int = Field(..., ge=1, description="Bumped by the cloud on every change.")
    early_grace_minutes: int = Field(15, ge=0, le=1440, description="Entry before a booking.")
    late_grace_minutes: int = Field(15, ge=0, le=1440, description="Entry after a booking ends.")
    anti_passback: AntiPassbackMode = AntiPassbackMode.HARD
    anti_passback_reset_hours: int | None = Field(
        None, ge=1, le=8760, description="A recorded presence older than this no longer blocks."
    )
    min_confidence: float = Field(0.80, ge=0.5, le=1.0, description="Below it a read never opens.")
    fuzzy_min_confidence: float = Field(0.90, ge=0.5, le=1.0, description="For a fuzzy match.")
    tariff: Tariff = Field(default_factory=default_tariff)
    overstay_grace_minutes: int = Field(10, ge=0, le=1440, description="Free after a booking.")
    credit_unused_booking: bool = Field(
        False,
        description="A booking whose car never arrived still earns the early-exit credit for "
        "its unused time when an exit is reported; off, a never-arrived booking earns none.",
    )
    pay_before_exit: bool = Field(
        False,
        description="The exit holds a car that owes money; off, it opens and the cloud bills. "
        "Turn on where drivers can pay before leaving (pay station, pay by plate).",
    )
    paid_exit_minutes: int = Field(15, ge=0, le=1440, description="Time to leave after paying.")
    drive_up: bool = Field(False, description="Admit cars without a booking (priced at exit).")
    drive_up_spaces: int = Field(0, ge=0, le=100_000, description="Spaces kept for drive-ups.")
    offline_exit: OfflineExit = OfflineExit.HOLD
    max_unpaid_holds: int = Field(3, ge=1, le=100, description="Unpaid bookings per customer.")
    language: str = Field("en", pattern=r"^[a-z]{2}$", description="Lane display language.")

    @model_validator(mode="after")
    def _fuzzy_needs_a_surer_read(self) -> LotPolicy:
        if self.fuzzy_min_confidence < self.min_confidence:
            raise ValueError("fuzzy_min_confidence must be at least min_confidence")
        return self

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


def parse_policy(data: Mapping[str, Any]) -> LotPolicy:
    """The policy in a ``policy`` change or snapshot; ProtocolError when this side cannot apply
    it (``unsupported_policy`` for a newer schema, ``invalid`` for a bad value)."""
    if not isinstance(data, Mapping):
        raise ProtocolError("invalid", "policy: not an object")
    schema = data.get("schema", POLICY_SCHEMA)
    if not isinstance(schema, int) or schema > POLICY_SCHEMA:
        shown = schema if isinstance(schema, int) else type(schema).__name__
        raise ProtocolError(
            "unsupported_policy", f"schema={shown}, this side knows {POLICY_SCHEMA}"
        )
    try:
        return LotPolicy.model_validate(dict(data))
    except ValidationError as exc:
        raise ProtocolError("invalid", describe_validation_error(exc)) from None
