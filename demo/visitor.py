"""The demo's drive-up visitor: a car the lot has no booking for, driven in and to the pay exit.

The demo lot admits drive-ups and holds a car at the exit until its stay is paid (its policy, set
through the cloud API like an operator would). Once the agent has that policy, the demo hands a
real dataset photo of an unbooked plate to the entry lane (``drive_up``), then to the pay exit
``exit-2``, whose camera watches an empty road: the car stays held there (``payment_due``, the
amount on the lane display) until someone pays by plate on the cloud's pay page, and then the
exit opens for it without a new read. Every step is printed.

The photos the demo's cameras replay meanwhile are only those of plates it booked, so replayed
cars never take the drive-up spaces the visitor needs.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from demo.stack import DemoError

__all__ = [
    "ENTRY_LANE",
    "PAY_EXIT_LANE",
    "VISITOR_POLICY",
    "AgentApi",
    "Visitor",
    "drive_to_the_exit",
    "photos_by_plate",
    "replay_folder",
    "visitor_candidates",
]

ENTRY_LANE = "entry-1"
PAY_EXIT_LANE = "exit-2"
# Drive-ups on (a few spaces), pay before exit, €2.50 per started hour (€15 a day at most), and a
# held car waits at the pay exit for up to 15 minutes (the lane's hold window in the agent config).
VISITOR_POLICY: dict[str, Any] = {
    "drive_up": True,
    "drive_up_spaces": 4,
    "pay_before_exit": True,
    "max_unpaid_holds": 20,  # the demo's one customer books many plates at once
    "tariff": {
        "currency": "EUR",
        "vehicles": {"car": {"block_minutes": 60, "rate_cents": 250, "daily_max_cents": 1500}},
    },
}
HOLD_WINDOW_SECONDS = 900
CANDIDATES_TRIED = 6


@dataclass(frozen=True)
class Visitor:
    photo: Path
    plate: str  # the ground truth beside the photo


def photos_by_plate(images: Path) -> dict[str, Path]:
    """Each ground-truth plate (``FILE x y w h PLATE`` files beside the photos) and its photo."""
    from gate_agent.plates import normalise

    found: dict[str, Path] = {}
    for truth in sorted(images.glob("*.txt")):
        fields = truth.read_text().split()
        if len(fields) >= 6 and (images / fields[0]).is_file():
            found.setdefault(normalise(fields[5]), images / fields[0])
    return found


def replay_folder(photos: dict[str, Path], booked: list[str], folder: Path) -> Path:
    """A folder of the booked plates' photos (and their truth files) for the cameras to replay."""
    folder.mkdir(parents=True)
    for plate in booked:
        photo = photos.get(plate)
        if photo is None:
            continue
        for source in (photo, photo.with_suffix(".txt")):
            if source.exists():
                (folder / source.name).symlink_to(source.resolve())
    if not any(folder.iterdir()):
        raise DemoError("no booked plate has a photo to replay: check DEMO_IMAGES")
    return folder


def visitor_candidates(photos: dict[str, Path], booked: list[str]) -> list[Visitor]:
    """``DEMO_VISITOR_PHOTO`` if set, else the unbooked plates' photos in order."""
    chosen = os.environ.get("DEMO_VISITOR_PHOTO")
    if chosen:
        path = Path(chosen)
        if not path.is_file():
            raise DemoError(f"DEMO_VISITOR_PHOTO {path} is not a file")
        beside = {photo.name: plate for plate, photo in photos_by_plate(path.parent).items()}
        return [Visitor(path, beside.get(path.name, ""))]
    return [Visitor(photo, plate) for plate, photo in photos.items() if plate not in booked]


class AgentApi:
    """The agent's JSON API as an operator's script uses it (``api_token``)."""

    def __init__(self, url: str, token: str) -> None:
        self.http = httpx.Client(
            base_url=url, timeout=60, headers={"Authorization": f"Bearer {token}"}
        )

    def frame(self, lane: str, photo: Path, *, act: bool) -> dict[str, Any]:
        response = self.http.post(
            f"/api/lanes/{lane}/frames",
            params={"act": str(act).lower(), "reason": "demo: the drive-up visitor"},
            files={"image": (photo.name, photo.read_bytes(), "image/jpeg")},
        )
        if response.status_code != 200:
            raise DemoError(f"the agent refused a frame on {lane}: {response.text[:200]}")
        return dict(response.json())

    def drive_up_policy_in_force(self) -> bool:
        status = self.http.get("/api/status").json()
        policy = (status.get("policy") or {}).get("policy") or {}
        return bool(policy.get("drive_up") and policy.get("pay_before_exit"))

    def close(self) -> None:
        self.http.close()


def _wait(check: Any, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise DemoError(f"{what} did not happen within {timeout:.0f} s; see the logs")
        time.sleep(0.5)


def _admitted(agent: AgentApi, candidates: list[Visitor]) -> tuple[Visitor, dict[str, Any]]:
    """The first candidate the entry would admit as a drive-up, read as its ground truth."""
    for visitor in candidates[:CANDIDATES_TRIED]:
        preview = agent.frame(ENTRY_LANE, visitor.photo, act=False)
        read_as_truth = not visitor.plate or preview["plate"] == visitor.plate
        if preview["reason"] == "drive_up" and read_as_truth:
            return visitor, preview
        print(f"  {visitor.photo.name}: {preview['reason']} (read {preview['plate']}), next photo")
    raise DemoError("no visitor photo was admitted as a drive-up: set DEMO_VISITOR_PHOTO")


def drive_to_the_exit(agent: AgentApi, candidates: list[Visitor]) -> dict[str, Any]:
    """Drive the visitor in at the entry and to the pay exit, where it is held; what happened."""
    _wait(agent.drive_up_policy_in_force, "the lot policy reaching the gate", 60)
    visitor, _ = _admitted(agent, candidates)
    entry = agent.frame(ENTRY_LANE, visitor.photo, act=True)
    if (entry["open"], entry["reason"]) != (True, "drive_up"):
        raise DemoError(f"the visitor's entry was not admitted: {entry['reason']}")
    print(f"  {visitor.photo.name}: {entry['plate']} enters at {ENTRY_LANE}: drive_up", flush=True)
    held = agent.frame(PAY_EXIT_LANE, visitor.photo, act=True)
    if (held["open"], held["reason"]) != (False, "payment_due"):
        raise DemoError(f"the visitor was not held at {PAY_EXIT_LANE}: {held['reason']}")
    owed = held["amount_owed_cents"]
    print(
        f"  {entry['plate']} drives to {PAY_EXIT_LANE}: held, payment_due {owed / 100:.2f}",
        flush=True,
    )
    return {
        "plate": entry["plate"],
        "photo": str(visitor.photo),
        "stay_id": entry["visit_id"],  # a stay is named by its entry pass
        "amount_owed_cents": owed,
        "exit_lane": PAY_EXIT_LANE,
    }
