"""Plain-data snapshots of lanes, decisions and events, shared by the pages and the JSON API."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from gate_agent.domain import Decision, JournalEvent
from gate_agent.lane import Lane, LaneOutcome
from gate_agent.rules import LOCAL_FALLBACK, rule_sources, rule_values
from gate_agent.web.context import WebContext, sync_snapshot

__all__ = [
    "decision_dict",
    "encode_jpeg",
    "event_dict",
    "lane_snapshot",
    "outcome_dict",
    "policy_snapshot",
    "status_document",
]

FRAME_MAX_WIDTH = 960


def decision_dict(decision: Decision) -> dict[str, Any]:
    return {
        "open": decision.open,
        "reason": decision.reason.value,
        "plate": decision.plate,
        "read_text": decision.read_text,
        "confidence": round(decision.confidence, 4),
        "booking_id": decision.reservation_id,
        "fuzzy": decision.fuzzy,
        "match_reason": decision.match_reason,
        "amount_owed_cents": decision.amount_owed_cents,
        "currency": decision.currency,
        "detail": decision.detail,
    }


def outcome_dict(outcome: LaneOutcome) -> dict[str, Any]:
    """The API's decision shape: ``open, reason, plate, booking_id, visit_id`` and more."""
    return {
        **decision_dict(outcome.decision),
        "visit_id": outcome.visit_id,
        "event_id": outcome.event_id or None,
        "lane_id": outcome.lane_id,
        "at": outcome.occurred_at.isoformat(),
        "barrier_error": outcome.barrier_error,
    }


def event_dict(event: JournalEvent) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "kind": event.kind.value,
        "lane_id": event.lane_id,
        "direction": None if event.direction is None else event.direction.value,
        "visit_id": event.visit_id,
        "plate": event.plate,
        "read_text": event.read_text,
        "confidence": event.confidence,
        "reason": event.reason,
        "booking_id": event.reservation_id,
        "fuzzy": event.fuzzy,
        "amount_owed_cents": event.amount_owed_cents,
        "currency": event.currency,
        "occurred_at": None if event.occurred_at is None else event.occurred_at.isoformat(),
        "sent": event.sent_at is not None,
        "has_image": bool(event.image_path),
        "detail": event.detail,
    }


def lane_alarms(ctx: WebContext, lane: Lane, started_at: float) -> list[str]:
    """Why an operator should look at this lane now (empty when all is well)."""
    alarms = []
    now = ctx.monotonic()
    waiting = None if ctx.help_desk is None else ctx.help_desk.pending(lane.lane_id)
    if waiting is not None:
        alarms.append(f"HELP requested by a driver at {waiting:%H:%M:%S} UTC (answer: manual open)")
    if lane.source is not None:
        health = lane.source.health()
        if not health.connected:
            alarms.append("camera disconnected")
        if health.last_frame_age_s is None:
            alarms.append("no camera frame yet")
        elif health.last_frame_age_s > ctx.web.stale_frame_seconds:
            alarms.append(f"camera frame stale ({health.last_frame_age_s:.0f} s old)")
    no_read_s = ctx.web.no_read_alarm_minutes * 60
    last_read = lane.status.last_read_at
    if (last_read if last_read is not None else started_at) < now - no_read_s:
        alarms.append(f"no plate read for {ctx.web.no_read_alarm_minutes:g} min")
    if lane.status.last_error:
        alarms.append(f"error: {lane.status.last_error}")
    return alarms


def lane_snapshot(ctx: WebContext, lane: Lane, started_at: float) -> dict[str, Any]:
    status = lane.status
    now = ctx.monotonic()
    camera: dict[str, Any] | None = None
    if lane.source is not None:
        h = lane.source.health()
        camera = {
            "connected": h.connected,
            "fps": h.fps,
            "last_frame_age_s": None
            if h.last_frame_age_s is None
            else round(h.last_frame_age_s, 2),
            "frames_total": h.frames_total,
            "reconnects": h.reconnects,
            "last_error": h.last_error,
            "stale": h.last_frame_age_s is None or h.last_frame_age_s > ctx.web.stale_frame_seconds,
        }
    pulse = lane.barrier.last_pulse
    outcome = status.last_outcome
    return {
        "id": lane.lane_id,
        "direction": lane.direction.value,
        "camera": camera,
        "barrier": {
            "open": lane.barrier.is_open,
            "last_pulse_at": pulse.started_at if pulse else None,
            "last_pulse_seconds": pulse.seconds if pulse else None,
        },
        "frames_processed": status.frames,
        "last_read": {
            "plates": [
                {"text": r.text, "confidence": round(r.confidence, 4)} for r in status.last_reads
            ],
            "age_s": None if status.last_read_at is None else round(now - status.last_read_at, 2),
        },
        "last_decision": None if outcome is None else outcome_dict(outcome),
        "recognition_ms": None
        if status.recognition_ms is None
        else round(status.recognition_ms, 1),
        "alarms": lane_alarms(ctx, lane, started_at),
    }


def policy_snapshot(ctx: WebContext) -> dict[str, Any]:
    """The policy in force, where each rule the lanes decide by comes from, the last policy
    refused and why, and how many access-list entries the cache holds."""
    store = ctx.store
    held = store.policy
    version = None if held is None else held.version
    lanes = list(ctx.lanes.values())
    sources = rule_sources(version)
    rules = rule_values(lanes[0].current_rules()) if lanes else {}
    refused = store.rejected_policy()
    return {
        "version": version,
        "source": LOCAL_FALLBACK if version is None else f"cloud policy v{version}",
        "applied_at": None if held is None else held.applied_at.isoformat(),
        "rules": {name: {"value": v, "source": sources[name]} for name, v in rules.items()},
        "policy": None if held is None else held.policy.to_wire(),
        "problem": store.policy_problem(),
        "last_rejected": None
        if refused is None
        else {
            "version": refused.version,
            "reason": refused.reason,
            "rejected_at": refused.rejected_at.isoformat(),
        },
        "access_list_entries": store.list_entry_count(),
    }


def status_document(ctx: WebContext, started_at: float) -> dict[str, Any]:
    inside = ctx.store.inside()
    return {
        "lot_id": ctx.lot_id,
        "lanes": [lane_snapshot(ctx, lane, started_at) for lane in ctx.lanes.values()],
        "sync": sync_snapshot(ctx),
        "policy": policy_snapshot(ctx),
        "occupancy": {
            "inside": len(inside),
            "vehicles": [
                {
                    "plate": p.plate,
                    "visit_id": p.visit_id,
                    "entered_at": p.entered_at.isoformat(),
                    "booking_id": p.reservation_id,
                }
                for p in inside
            ],
        },
    }


def encode_jpeg(image: np.ndarray, max_width: int = FRAME_MAX_WIDTH) -> bytes:
    """A JPEG of ``image``, scaled down to ``max_width`` for phones on the lot's Wi-Fi."""
    height, width = image.shape[:2]
    if width > max_width:
        image = cv2.resize(image, (max_width, round(height * max_width / width)))
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 75])
    if not ok:
        raise ValueError("frame could not be encoded as JPEG")
    return bytes(data.tobytes())
