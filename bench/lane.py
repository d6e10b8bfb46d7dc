"""The lane on the shared dataset: who it admits, whom it must not, and how fast.

Every dataset photo is offered to an entry lane as a fresh camera frame (a new car) three times,
each against a 10,000-reservation cache on disk with different bookings. A car that was let in
is recorded as gone before the next photo (some plates are in the dataset twice: two arrivals,
not one car passing back).

1. **Admitted on the first frame** (target ≥ 98%): a confirmed booking for every photo's true
   plate; a photo counts when its single frame opens the barrier.
2. **False opens against neighbours** (target 0): the true plates are not booked; instead each
   photo's plate has one to three bookings one edit away (a substitution by a measured lookalike
   or by any character, an insertion, a deletion, an adjacent transposition). Any opening is a
   car let in on someone else's booking.
3. **False opens against strangers** (target 0): nothing but the 10,000 random bookings.
4. **Priced drive-up exits** (issue 13): an exit lane under a policy admitting drive-ups; before
   each photo its true plate is recorded inside as a drive-up that entered 2 h 37 min ago (every
   third one with a payment for its stay), so the exit prices the stay with the policy's tariff
   through ``price_stay`` and opens with ``bill_later`` and the amount (``paid`` for the paid
   ones). Pay before exit is off here so that the barrier is commanded: the pricing counts in
   the same frame → command budget.

Frame → barrier command: the clock starts when the frame is handed to the lane (as the camera
thread would) and stops when the barrier driver has been commanded open — recognition (second
look included), voting, cache lookup, decision and the fsync'd journal commit all count. Target
(issue 2): p95 ≤ 100 ms on this machine. The lane feeds a running lane display
(:class:`~gate_agent.display.DisplayHub`) as the agent's do, so its listener and its thread's work
on the screens count too (issue 15: no more than 5 ms on the p95). The recognizer's confusions on
the photos of run 1 are printed beside the lookalike pairs the matcher uses
(``gate_agent/confusions.json``).
"""

from __future__ import annotations

import random
import statistics
import string
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from bench.confusions import best_read, derive, table_lines, tally
from bench.dataset import Sample, load_samples
from gate_agent.code_reader import CodeReader
from gate_agent.config import AgentConfig, parse_config
from gate_agent.display import DisplayHub
from gate_agent.domain import (
    Direction,
    EventKind,
    JournalEvent,
    LotRules,
    Reason,
    Reservation,
    ReservationStatus,
    StayKind,
    StayPayment,
)
from gate_agent.lane import Lane, LaneOutcome
from gate_agent.passes import PassTracker
from gate_agent.plates import lookalike_pairs, normalise, same_plate
from gate_agent.recognition import Recognizer, load_image, models_dir_from_env
from gate_agent.store import Store
from hardware.barrier import DryRunBarrier
from hardware.camera import Frame
from parkgate_protocol import parse_policy

TARGET_P95_MS = 100.0
TARGET_ADMITTED = 0.98
TARGET_DISPLAY_MS = 5.0
_REPO = Path(__file__).resolve().parent.parent


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


_ALPHABET = string.ascii_uppercase + string.digits
EDITS = ("lookalike", "substitution", "insertion", "deletion", "transposition")


def _booking(rid: str, plate: str, now: datetime) -> Reservation:
    return Reservation(
        id=rid,
        plate=plate,
        starts_at=now - timedelta(minutes=10),
        ends_at=now + timedelta(hours=2),
        status=ReservationStatus.CONFIRMED,
    )


def _filler(n: int) -> list[Reservation]:
    rng = random.Random(7)
    now = datetime.now(UTC)
    return [_booking(f"fill{i}", "".join(rng.choices(_ALPHABET, k=7)), now) for i in range(n)]


def neighbour(plate: str, kind: str, rng: random.Random) -> str | None:
    """One edit of ``plate`` of the given kind (None when the plate allows none of that kind)."""
    i = rng.randrange(len(plate))
    if kind == "lookalike":
        options = [
            (j, other)
            for j, ch in enumerate(plate)
            for pair in lookalike_pairs()
            if ch in pair
            for other in pair - {ch}
        ]
        if not options:
            return None
        j, other = rng.choice(options)
        return plate[:j] + other + plate[j + 1 :]
    if kind == "substitution":
        return plate[:i] + rng.choice(_ALPHABET.replace(plate[i], "")) + plate[i + 1 :]
    if kind == "insertion":
        return plate[:i] + rng.choice(_ALPHABET) + plate[i:]
    if kind == "deletion":
        return plate[:i] + plate[i + 1 :] if len(plate) > 1 else None
    swaps = [j for j in range(len(plate) - 1) if plate[j] != plate[j + 1]]
    if not swaps:
        return None
    j = rng.choice(swaps)
    return plate[:j] + plate[j + 1] + plate[j] + plate[j + 2 :]


def neighbours(samples: Sequence[Sample], now: datetime) -> tuple[list[Reservation], Counter[str]]:
    """One to three one-edit bookings per photo, and their kinds. Never a photo's true plate,
    nor the same plate with O and 0 swapped (one character, see ``plates.same_plate``)."""
    rng = random.Random(11)
    truths = {s.plate for s in samples}
    bookings: list[Reservation] = []
    kinds: Counter[str] = Counter()
    for index, sample in enumerate(samples):
        for kind in rng.sample(EDITS, rng.randint(1, 3)):
            near = neighbour(sample.plate, kind, rng)
            if near and not any(same_plate(near, truth) for truth in truths):
                bookings.append(_booking(f"nb{index}-{kind}", near, now))
                kinds[kind] += 1
    return bookings, kinds


def _display_config(tmp: Path) -> AgentConfig:
    """An agent config for the lane display the bench lane feeds (with a pay link)."""
    lane = {"id": "entry", "direction": "entry", "camera": {"kind": "replay", "path": str(tmp)}}
    return parse_config(
        {
            "lot": {"id": "bench", "data_dir": str(tmp)},
            "sync": {"cloud_url": "https://cloud.example"},
            "lanes": [{**lane, "barrier": {"kind": "dry-run"}}],
        }
    )


def make_lane(
    recognizer: Recognizer,
    store: Store,
    barrier: DryRunBarrier,
    direction: Direction = Direction.ENTRY,
    *,
    read_codes: bool = True,
) -> Lane:
    """The bench's lane: a fresh pass tracker, the default rules, and (as the agent's lanes with
    ``read_codes``) the QR code reader, which looks only on frames that did not open."""
    return Lane(
        lot_id="bench",
        lane_id=direction.value,
        direction=direction,
        recognizer=recognizer,
        tracker=PassTracker(),
        store=store,
        barrier=barrier,
        rules=LotRules(),
        code_reader=CodeReader() if read_codes else None,
    )


def _bench_lane(
    recognizer: Recognizer, store: Store, barrier: DryRunBarrier, tmp: Path, display: bool
) -> tuple[Lane, DisplayHub | None]:
    lane = make_lane(recognizer, store, barrier)
    if not display:
        return lane, None
    hub = DisplayHub(_display_config(tmp), {lane.lane_id: lane}, store).start()
    lane.add_listener(hub.notify)
    return lane, hub


Outcomes = list[tuple[LaneOutcome | None, str]]


def _run_lane(
    recognizer: Recognizer,
    samples: Sequence[Sample],
    bookings: Sequence[Reservation],
    tmp: Path,
    displays: Sequence[bool] = (True,),
) -> list[Outcomes]:
    """Each photo as one fresh car's only frame: its outcome (None: not decided) and best read.

    One lane (own store, same bookings) per entry of ``displays``, with a running lane display
    or without; each photo goes to every lane in turn, the order rotating, so that lanes compared
    share the machine's load."""
    with ExitStack() as stack:
        lanes = []
        for index, display in enumerate(displays):
            store = Store(tmp / f"agent-{len(bookings)}-{index}.sqlite3")
            stack.callback(store.close)
            store.upsert_reservations(list(bookings))
            barrier = DryRunBarrier(pulse_seconds=0.05)
            stack.callback(barrier.close)
            lane, hub = _bench_lane(recognizer, store, barrier, tmp, display)
            if hub is not None:
                stack.callback(hub.stop)
            lanes.append(lane)
        outcomes: list[Outcomes] = [[] for _ in lanes]
        for seq, sample in enumerate(samples):
            image = load_image(sample.image)
            for turn in range(len(lanes)):
                index = (seq + turn) % len(lanes)
                outcomes[index].append(_one_car(lanes[index], image, seq))
    return outcomes


DRIVE_UP_POLICY = {"version": 1, "drive_up": True, "drive_up_spaces": 500, "pay_before_exit": False}
STAY = timedelta(hours=2, minutes=37)


def _drive_up_inside(store: Store, plate: str, index: int) -> None:
    """``plate`` inside on a drive-up stay that began ``STAY`` ago (every third one paid)."""
    stay = f"stay{index}"
    entered = datetime.now(UTC) - STAY
    event = JournalEvent(
        lot_id="bench",
        kind=EventKind.ENTRY,
        lane_id="entry",
        direction=Direction.ENTRY,
        visit_id=stay,
        stay_id=stay,
        plate=plate,
        occurred_at=entered,
    )
    store.record_pass(event, presence="enter", stay_kind=StayKind.DRIVE_UP)
    if index % 3 == 0:
        paid = StayPayment(stay, 1500, datetime.now(UTC), "EUR", f"pay{index}")
        store.apply_stay_payment(paid, plate)


def _run_exit(
    recognizer: Recognizer, samples: Sequence[Sample], bookings: Sequence[Reservation], tmp: Path
) -> list[LaneOutcome | None]:
    """Each photo as a drive-up car's only frame at the exit, its stay priced there."""
    store = Store(tmp / "agent-exit.sqlite3")
    store.upsert_reservations(list(bookings))
    store.apply_policy(parse_policy(DRIVE_UP_POLICY), DRIVE_UP_POLICY)
    barrier = DryRunBarrier(pulse_seconds=0.05)
    lane = make_lane(recognizer, store, barrier, Direction.EXIT, read_codes=False)
    outcomes: list[LaneOutcome | None] = []
    try:
        for seq, sample in enumerate(samples):
            for car in store.inside():  # the last car left (or was never read)
                store.reset_presence(car.plate, actor="bench", reason="next photo")
            _drive_up_inside(store, normalise(sample.plate), seq)
            image = load_image(sample.image)
            lane.tracker = PassTracker()
            frame = Frame(image=image, seq=seq, captured_at=time.monotonic(), wall_time=time.time())
            outcomes.append(lane.process_frame(frame))
    finally:
        barrier.close()
        store.close()
    return outcomes


def _exit_lines(samples: Sequence[Sample], outcomes: Sequence[LaneOutcome | None]) -> list[str]:
    opened = [o for o in outcomes if o is not None and o.frame_to_command_ms is not None]
    billed = [o for o in opened if o.decision.reason is Reason.BILL_LATER]
    paid = [o for o in opened if o.decision.reason is Reason.PAID]
    free = [o for o in billed if o.decision.amount_owed_cents <= 0]
    latencies = [o.frame_to_command_ms for o in opened if o.frame_to_command_ms is not None]
    if not latencies:
        return ["priced drive-up exits: none opened  FAIL"]
    p95 = _pct(latencies, 0.95)
    amounts = sorted({o.decision.amount_owed_cents for o in billed})
    return [
        f"priced drive-up exits {len(opened)}/{len(samples)}: bill_later {len(billed)} "
        f"(amounts {amounts}), paid {len(paid)}, billed nothing {len(free)}"
        f"   {'PASS' if not free else 'FAIL'}",
        f"exit frame→barrier command (stay priced)  p50 {statistics.median(latencies):.1f} ms  "
        f"p95 {p95:.1f} ms  max {max(latencies):.1f} ms   target p95 ≤ {TARGET_P95_MS:.0f} ms  "
        f"{'PASS' if p95 <= TARGET_P95_MS else 'FAIL'}",
    ]


def _one_car(lane: Lane, image: np.ndarray, seq: int) -> tuple[LaneOutcome | None, str]:
    lane.tracker = PassTracker()  # every photo is a new car
    lane.status.last_reads = ()
    frame = Frame(image=image, seq=seq, captured_at=time.monotonic(), wall_time=time.time())
    outcome = lane.process_frame(frame)
    reads = lane.status.last_reads
    for car in lane.store.inside():  # it drives on: the dataset has some plates twice
        lane.store.reset_presence(car.plate, actor="bench", reason="next photo, next arrival")
    return outcome, reads[0].text if reads else "—"


def _latencies(outcomes: Outcomes) -> list[float]:
    return [o.frame_to_command_ms for o, _ in outcomes if o is not None and o.frame_to_command_ms]


def _display_cost_line(without: Outcomes, with_display: Outcomes) -> str:
    before, after = _pct(_latencies(without), 0.95), _pct(_latencies(with_display), 0.95)
    cost = after - before
    verdict = "PASS" if cost <= TARGET_DISPLAY_MS else "FAIL"
    return (
        f"lane display's cost (paired lanes, same photos): p95 {before:.1f} ms without, "
        f"{after:.1f} ms with: {cost:+.1f} ms   target ≤ +{TARGET_DISPLAY_MS:.0f} ms  {verdict}"
    )


def _opened(outcome: LaneOutcome | None) -> bool:
    return outcome is not None and outcome.decision.open


def _false_open_lines(
    label: str, samples: Sequence[Sample], outcomes: Sequence[tuple[LaneOutcome | None, str]]
) -> list[str]:
    opened = [(s, o) for s, (o, _) in zip(samples, outcomes, strict=True) if _opened(o)]
    verdict = "PASS" if not opened else "FAIL"
    lines = [f"false opens against {label}: {len(opened)} of {len(samples)}   target 0  {verdict}"]
    for sample, outcome in opened[:10]:
        assert outcome is not None
        d = outcome.decision
        lines.append(f"  {sample.plate} read {d.read_text} opened {d.plate}: {d.match_reason}")
    return lines


def run() -> list[str]:
    samples = load_samples()
    models_dir = models_dir_from_env() or _REPO.parent / "shared" / "models"
    recognizer = Recognizer.from_models(models_dir, threads=2)
    now = datetime.now(UTC)
    booked = [_booking(f"bk{i}", normalise(s.plate), now) for i, s in enumerate(samples)]
    near, kinds = neighbours(samples, now)
    filler = _filler(10_000)
    recognizer.read(load_image(samples[0].image))  # warm-up
    seen: list[tuple[str, str, tuple[str, ...]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        admitted, without_display = _run_lane(
            recognizer, samples, filler + booked, Path(tmp), displays=(True, False)
        )
        for sample in samples:  # what the lane read, for the confusion table (not timed)
            read = best_read(sample, recognizer.read(load_image(sample.image)))
            seen.append((sample.region, sample.plate, ("" if read is None else read.text,)))
        exits = _run_exit(recognizer, samples, filler, Path(tmp))
        (against_near,) = _run_lane(recognizer, samples, filler + near, Path(tmp))
        (against_strangers,) = _run_lane(recognizer, samples, filler, Path(tmp))
    opened = [o for o, _ in admitted if o is not None and o.frame_to_command_ms is not None]
    latencies = [o.frame_to_command_ms for o in opened if o.frame_to_command_ms is not None]
    fuzzy = [
        f"{o.decision.read_text}→{o.decision.plate} ({o.decision.match_reason})"
        for o in opened
        if o.decision.fuzzy or o.decision.match_reason != "exact"
    ]
    missed = [
        f"{s.plate}→{read}"
        for s, (o, read) in zip(samples, admitted, strict=True)
        if not _opened(o)
    ]
    share = len(opened) / len(samples)
    p50, p95 = statistics.median(latencies), _pct(latencies, 0.95)
    counts = tally(seen)
    return [
        f"photos {len(samples)}; cache 10,000 random + the bookings of each run",
        f"admitted on the first frame {len(opened)}/{len(samples)} ({share:.1%})"
        f"   target ≥ {TARGET_ADMITTED:.0%}  {'PASS' if share >= TARGET_ADMITTED else 'FAIL'}",
        f"  not exact ({len(fuzzy)}): " + (", ".join(fuzzy) or "none"),
        "  not admitted (truth→read): " + (", ".join(missed) or "none"),
        *_false_open_lines(
            f"neighbours ({len(near)} one-edit bookings: "
            + ", ".join(f"{k} {kinds[k]}" for k in EDITS)
            + ")",
            samples,
            against_near,
        ),
        *_false_open_lines("strangers (10,000 bookings)", samples, against_strangers),
        f"frame→barrier command  p50 {p50:.1f} ms  p95 {p95:.1f} ms  "
        f"max {max(latencies):.1f} ms   target p95 ≤ {TARGET_P95_MS:.0f} ms  "
        f"{'PASS' if p95 <= TARGET_P95_MS else 'FAIL'}",
        *_exit_lines(samples, exits),
        _display_cost_line(without_display, admitted),
        *table_lines(counts, derive(counts)),
        "  lookalike pairs the matcher uses (gate_agent/confusions.json): "
        + ", ".join("/".join(sorted(p)) for p in sorted(lookalike_pairs(), key=sorted)),
    ]


if __name__ == "__main__":
    for line in run():
        print(line)
