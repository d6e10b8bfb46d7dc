"""The stays page: every car inside, the kind of stay it is on, when it entered, what it owes now
and what it has paid through — priced exactly as the exit lane would price it this moment (the
lane's own decision over the store's facts and the rules in force, the synced tariff).

Operators only (the page shows plates, like the occupancy page)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from gate_agent.decision import decide
from gate_agent.domain import (
    Decision,
    Direction,
    LotRules,
    LotState,
    Presence,
    Reason,
    StayPayment,
)
from gate_agent.rules import rules_in_force
from gate_agent.web.context import WebContext
from gate_agent.web.deps import Operator, get_ctx, render
from gate_agent.web.render import esc, when

__all__ = ["StayNow", "router", "stays_now"]

router = APIRouter()


@dataclass(frozen=True, slots=True)
class StayNow:
    """A car inside and what its exit would decide now."""

    presence: Presence
    payment: StayPayment | None
    exit: Decision


def _exit_rules(ctx: WebContext) -> tuple[LotRules, LotState]:
    """The rules an exit decides by, and the lot's state as it sees it (the cloud's reach)."""
    exits = [lane for lane in ctx.lanes.values() if lane.direction is Direction.EXIT]
    lanes = exits or list(ctx.lanes.values())
    if lanes:
        rules = lanes[0].current_rules()
        return rules, lanes[0].lot_state(rules)
    held = ctx.store.policy
    return rules_in_force(None if held is None else held.policy, LotRules()), LotState()


def stays_now(ctx: WebContext, now: datetime) -> list[StayNow]:
    """Every car inside, oldest stay first, with the exit's decision for it at ``now``."""
    rules, lot = _exit_rules(ctx)
    stays = []
    for presence in ctx.store.inside():
        facts = ctx.store.facts_for(presence.plate, 1.0)
        decision = decide(Direction.EXIT, [facts], now, rules, lot=lot)
        stays.append(StayNow(presence, facts.stay_payment, decision))
    return stays


def _owes(stay: StayNow) -> str:
    d = stay.exit
    if d.reason is Reason.PAYMENT_DUE and d.amount_owed_cents == 0:
        return f'<span class="alarm">cannot be priced: {esc(d.detail)}</span>'
    if d.amount_owed_cents:
        return f"{d.amount_owed_cents / 100:.2f} {esc(d.currency)}"
    return "nothing"


def stays_html(stays: list[StayNow]) -> str:
    drive_ups = sum(1 for s in stays if s.presence.kind == "drive_up")
    rows = "".join(
        f'<tr><td class="plate">{esc(s.presence.plate)}</td>'
        f'<td class="kind">{esc(s.presence.kind)}</td><td>{when(s.presence.entered_at)}</td>'
        f'<td class="owes">{_owes(s)}</td>'
        f"<td>{when(None if s.payment is None else s.payment.paid_through)}</td>"
        f'<td class="exit">{esc(s.exit.reason)}</td></tr>'
        for s in stays
    )
    return f"""<p>{len(stays)} vehicle(s) inside, {drive_ups} drive-up.</p>
<div class="scroll"><table><thead><tr><th>Plate</th><th>Stay</th><th>Entered</th>
<th>Owes now</th><th>Paid through</th><th>The exit now</th></tr></thead>
<tbody>{rows}</tbody></table></div>"""


@router.get("/stays", response_class=HTMLResponse)
def stays_page(request: Request, user: Operator) -> Response:
    ctx = get_ctx(request)
    body = stays_html(stays_now(ctx, ctx.wallclock()))
    return render(request, "Stays", body, active="/stays")
