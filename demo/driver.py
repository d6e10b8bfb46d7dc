"""``python -m demo.driver``: the held drive-up visitor pays by plate, as a person would.

Reads the running demo's ``credentials.json`` (``DEMO_DIR``, default ``.demo``) and follows the
cloud's public pages exactly as a browser does, printing each step: the pay-by-plate page for the
visitor's plate (``GET /lots/{lot_id}/pay?plate=``), its Pay button (``POST
/lots/{lot_id}/pay/{session_id}``, redirected to the hosted pay page ``/pay/{public_id}``), the
local provider's Pay button there (``POST /pay/{public_id}/local``: the signed webhook reaches the
cloud, which pushes ``stay_paid`` to the lot), the result page; then it waits until the pay exit
has opened for the car and prints the exit event. Nothing is paid any other way.
"""

from __future__ import annotations

import html
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx

from demo.stack import ROOT

STAY_FORM = re.compile(r'action="(/lots/\d+/pay/[^"]+)"')
LOCAL_FORM = re.compile(r'action="(/pay/[0-9a-f]{32}/local)"')
TITLE = re.compile(r"<h1>(.*?)</h1>")
LOOKUPS = 6  # the page is rate-limited (10 a minute per address): a few tries, seconds apart


class PaymentFailed(RuntimeError):
    """A step of paying did not answer as the page should."""


def _title(page: str) -> str:
    found = TITLE.search(page)
    return html.unescape(found.group(1)) if found else "?"


def _stay_form(cloud: httpx.Client, lot_id: int, plate: str) -> str:
    """The Pay button of the visitor's stay on the pay-by-plate page (the cloud may take a
    moment to open the stay from the lot's entry event)."""
    for attempt in range(LOOKUPS):
        page = cloud.get(f"/lots/{lot_id}/pay", params={"plate": plate})
        print(f"GET  {page.url} → {page.status_code}", flush=True)
        found = STAY_FORM.search(page.text) if page.status_code == 200 else None
        if found:
            amount = re.search(r"<td>([\d.]+ [A-Z]{3})</td>", page.text)
            print(f"     owed: {amount.group(1) if amount else '?'}", flush=True)
            return found.group(1)
        if attempt + 1 < LOOKUPS:
            time.sleep(6)
    raise PaymentFailed(f"no stay to pay for {plate} on the pay-by-plate page")


def pay(credentials: dict[str, Any]) -> dict[str, Any]:
    """Pay the visitor's stay on the pages; the pay exit's event once it opened."""
    visitor = credentials["visitor"]
    with httpx.Client(base_url=credentials["cloud_url"], timeout=30) as cloud:
        action = _stay_form(cloud, credentials["lot_id"], visitor["plate"])
        chosen = cloud.post(action, follow_redirects=False)
        print(f"POST {action} → {chosen.status_code} {chosen.headers.get('location')}")
        if chosen.status_code != 303:
            raise PaymentFailed(f"the stay's Pay button answered {chosen.status_code}")
        pay_page = cloud.get(urljoin(credentials["cloud_url"], chosen.headers["location"]))
        print(f"GET  {pay_page.url} → {pay_page.status_code} {_title(pay_page.text)}")
        button = LOCAL_FORM.search(pay_page.text)
        if pay_page.status_code != 200 or button is None:
            raise PaymentFailed(f"the pay page has no Pay button: {_title(pay_page.text)}")
        paid = cloud.post(button.group(1), follow_redirects=True)
        print(f"POST {button.group(1)} → {paid.status_code} {_title(paid.text)}", flush=True)
        if _title(paid.text) != "Paid":
            raise PaymentFailed(f"the payment did not complete: {_title(paid.text)}")
    return _wait_for_the_exit(credentials)


def _wait_for_the_exit(credentials: dict[str, Any], timeout: float = 30) -> dict[str, Any]:
    visitor = credentials["visitor"]
    headers = {"Authorization": f"Bearer {credentials['operator_token']}"}
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=credentials["agent_url"], timeout=10, headers=headers) as agent:
        while time.monotonic() < deadline:
            events = agent.get(
                "/api/events", params={"lane_id": visitor["exit_lane"], "kind": "exit"}
            ).json()["events"]
            for event in events:
                if event["plate"] == visitor["plate"]:
                    print(
                        f"{visitor['exit_lane']}: {event['plate']} exits, reason "
                        f"{event['reason']} (the barrier opens)",
                        flush=True,
                    )
                    return dict(event)
            time.sleep(0.2)
    raise PaymentFailed(f"paid, but {visitor['exit_lane']} did not open within {timeout:.0f} s")


def main() -> int:
    state = Path(os.environ.get("DEMO_DIR", ROOT / ".demo"))
    try:
        credentials = json.loads((state / "credentials.json").read_text())
    except (OSError, ValueError):
        print(f"demo.driver: no running demo in {state} (start `make demo` first)", file=sys.stderr)
        return 2
    if not credentials.get("visitor"):
        print("demo.driver: this demo has no held visitor", file=sys.stderr)
        return 2
    try:
        pay(credentials)
    except (PaymentFailed, httpx.HTTPError) as exc:
        print(f"demo.driver: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
