"""The lot's policy page: the version in force, where each rule comes from, the last policy
refused and why, and the access-list size (the same data as ``GET /api/status``'s ``policy``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from gate_agent.web.deps import Operator, get_ctx, render
from gate_agent.web.render import esc
from gate_agent.web.status import policy_snapshot

__all__ = ["router"]

router = APIRouter()


def _shown(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, dict):
        return f"<code>{esc(value)}</code>"
    return esc(value)


def policy_html(snap: dict[str, Any]) -> str:
    rows = "".join(
        f'<tr><td>{esc(name)}</td><td class="value">{_shown(rule["value"])}</td>'
        f'<td class="source">{esc(rule["source"])}</td></tr>'
        for name, rule in snap["rules"].items()
    )
    refused = snap["last_rejected"]
    refused_html = (
        "<p>No policy refused.</p>"
        if refused is None
        else f'<p class="rejected">Last refused: v{esc(refused["version"] or "?")} at '
        f"{esc(refused['rejected_at'])}: {esc(refused['reason'])}</p>"
    )
    state = f'<p class="policy-state alarm">{esc(snap["problem"])}</p>' if snap["problem"] else ""
    applied = f" (applied {esc(snap['applied_at'])})" if snap["applied_at"] else ""
    return f"""<section class="card policy"><h2>In force: {esc(snap["source"])}{applied}</h2>
{state}<div class="scroll"><table><thead><tr><th>Rule</th><th>Value</th><th>From</th></tr>
</thead><tbody>{rows}</tbody></table></div>
<p>Access-list entries cached: <strong class="lists">{snap["access_list_entries"]}</strong></p>
{refused_html}</section>"""


@router.get("/policy", response_class=HTMLResponse)
def policy_page(request: Request, user: Operator) -> Response:
    body = policy_html(policy_snapshot(get_ctx(request)))
    return render(request, "Lot policy", body, active="/policy")
