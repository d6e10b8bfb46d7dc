"""The rules in force at a lot: its cloud policy, else the agent's local fall-backs.

Pure, no IO. The cloud's :class:`~parkgate_protocol.LotPolicy` is the one source of truth for a
lot's rules; until the first one arrives (a new lot, a wiped cache) the lanes decide by the
fall-backs in the agent's TOML (``lot.rules``, :class:`gate_agent.config.RulesConfig`). A policy
carries every rule, so once one is in force no fall-back is used; :func:`rule_sources` says where
each value came from for the status page.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import timedelta
from enum import StrEnum

from gate_agent.domain import AntiPassback, LotRules
from parkgate_protocol import LotPolicy

__all__ = ["LOCAL_FALLBACK", "rule_sources", "rule_values", "rules_in_force"]

LOCAL_FALLBACK = "local fall-back"


def rules_in_force(policy: LotPolicy | None, fallback: LotRules) -> LotRules:
    """The lanes' rules: from ``policy`` when there is one, else ``fallback``."""
    if policy is None:
        return fallback
    reset = policy.anti_passback_reset_hours
    return LotRules(
        early_grace=timedelta(minutes=policy.early_grace_minutes),
        late_grace=timedelta(minutes=policy.late_grace_minutes),
        anti_passback=AntiPassback(policy.anti_passback.value),
        min_confidence=policy.min_confidence,
        fuzzy_min_confidence=policy.fuzzy_min_confidence,
        anti_passback_reset=None if reset is None else timedelta(hours=reset),
        pay_before_exit=policy.pay_before_exit,
        overstay_grace=timedelta(minutes=policy.overstay_grace_minutes),
        tariff=policy.tariff,
        drive_up=policy.drive_up,
        drive_up_spaces=policy.drive_up_spaces,
        paid_exit=timedelta(minutes=policy.paid_exit_minutes),
        offline_exit=policy.offline_exit,
    )


def rule_values(rules: LotRules) -> dict[str, object]:
    """The rules as plain data (durations in minutes, the tariff's wire form) for pages and the
    API."""
    values: dict[str, object] = {}
    for f in fields(rules):
        value = getattr(rules, f.name)
        if isinstance(value, timedelta):
            value = value.total_seconds() / 60
        elif f.name == "tariff" and value is not None:
            value = value.model_dump(mode="json")
        elif isinstance(value, StrEnum):
            value = value.value
        values[f.name] = value
    return values


def rule_sources(policy_version: int | None) -> dict[str, str]:
    """Where each rule value comes from: ``cloud policy vN`` or :data:`LOCAL_FALLBACK`."""
    source = LOCAL_FALLBACK if policy_version is None else f"cloud policy v{policy_version}"
    return {f.name: source for f in fields(LotRules)}
