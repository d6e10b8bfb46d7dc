"""The pay-by-plate link a driver who owes money is shown (as a QR code)."""

from __future__ import annotations

from urllib.parse import quote

from gate_agent.config import AgentConfig

__all__ = ["pay_url"]

CLOUD_PAY_PATH = "/lots/{lot_id}/pay?plate={plate}"  # the cloud's pay-by-plate page


def pay_url(config: AgentConfig, plate: str | None) -> str | None:
    """``display.pay_url_template``, else the cloud's page under ``sync.cloud_url``, filled in
    for this lot and plate; None when there is no link (the screen says: pay station)."""
    if not plate:
        return None
    template = config.display.pay_url_template
    if template is None:
        base = config.sync.cloud_url
        if not base:
            return None
        template = base.rstrip("/") + CLOUD_PAY_PATH
    return template.format(lot_id=quote(config.lot.id, safe=""), plate=quote(plate, safe=""))
