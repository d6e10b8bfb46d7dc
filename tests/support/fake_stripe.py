"""A fake Stripe API on a local port that the official SDK really speaks HTTP to.

It answers ``POST /v1/payment_intents``, ``/v1/refunds`` and ``/v1/checkout/sessions`` with the
objects Stripe returns, replays the first answer for a repeated ``Idempotency-Key`` (as Stripe
does), records every request, and fails on demand (``next_status``: 402 declines, >= 500 fails).
Tests build signed events about the sessions it opened with :meth:`FakeStripe.session_event`.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakeStripe", "running_fake_stripe"]


@dataclass
class FakeStripe:
    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    next_status: list[int] = field(default_factory=list)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    answered: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)

    def answer(self, path: str, headers: dict[str, str], params: dict[str, str]) -> tuple[int, Any]:
        self.requests.append({"path": path, "headers": headers, "params": params})
        key = headers.get("Idempotency-Key")
        if key and key in self.answered:
            return self.answered[key]
        status = self.next_status.pop(0) if self.next_status else 200
        body = _error(status) if status >= 400 else self._object(path, params)
        if key and status < 500:
            self.answered[key] = (status, body)
        return status, body

    def _object(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        n = len(self.requests)
        if path == "/v1/payment_intents":
            return {
                "id": f"pi_fake_{n}",
                "object": "payment_intent",
                "amount": int(params["amount"]),
                "currency": params["currency"],
                "status": "requires_payment_method",
                "client_secret": f"pi_fake_{n}_secret_x",
                "metadata": {},
            }
        if path == "/v1/checkout/sessions":
            return self._session(n, params)
        return {
            "id": f"re_fake_{n}",
            "object": "refund",
            "amount": int(params["amount"]),
            "payment_intent": params["payment_intent"],
            "status": "succeeded",
        }

    def _session(self, n: int, params: dict[str, str]) -> dict[str, Any]:
        metadata = {
            k[len("metadata[") : -1]: v for k, v in params.items() if k.startswith("metadata[")
        }
        session = {
            "id": f"cs_fake_{n}",
            "object": "checkout.session",
            "url": f"https://checkout.stripe.test/c/pay/cs_fake_{n}",
            "mode": "payment",
            "status": "open",
            "payment_status": "unpaid",
            "payment_intent": None,
            "amount_total": int(params["line_items[0][price_data][unit_amount]"]),
            "currency": params["line_items[0][price_data][currency]"],
            "client_reference_id": params.get("client_reference_id"),
            "metadata": metadata,
            "success_url": params["success_url"],
        }
        self.sessions[session["id"]] = session
        return session

    def session_event(self, session_id: str, kind: str, **changes: Any) -> dict[str, Any]:
        """A ``checkout.session.*`` event about a session this fake opened (paid by default
        for ``completed``: with a PaymentIntent ``pi_for_<session>``)."""
        obj = dict(self.sessions[session_id])
        if kind == "checkout.session.completed":
            obj |= {"status": "complete", "payment_status": "paid"}
            obj["payment_intent"] = "pi_for_" + session_id
        elif kind == "checkout.session.expired":
            obj["status"] = "expired"
        obj |= changes
        return _event(kind, obj, f"evt_{kind}_{session_id}_{len(self.requests)}")

    def intent_event(self, session_id: str, **changes: Any) -> dict[str, Any]:
        """``payment_intent.succeeded`` for the PaymentIntent of a paid session."""
        session = self.sessions[session_id]
        obj = {
            "id": "pi_for_" + session_id,
            "object": "payment_intent",
            "amount": session["amount_total"],
            "amount_received": session["amount_total"],
            "currency": session["currency"],
            "status": "succeeded",
            "metadata": dict(session["metadata"]),
        } | changes
        return _event("payment_intent.succeeded", obj, f"evt_pi_{session_id}")


def _event(kind: str, obj: dict[str, Any], event_id: str) -> dict[str, Any]:
    return {"id": event_id, "object": "event", "type": kind, "data": {"object": obj}}


def _error(status: int) -> dict[str, Any]:
    if status == 402:
        return {"error": {"type": "card_error", "code": "card_declined", "message": "no"}}
    return {"error": {"type": "api_error", "message": "boom"}}


def _handler(fake: FakeStripe) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            form = urllib.parse.parse_qs(self.rfile.read(length).decode())
            params = {k: v[0] for k, v in form.items()}
            status, body = fake.answer(self.path, dict(self.headers), params)
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

    return Handler


@contextmanager
def running_fake_stripe() -> Iterator[FakeStripe]:
    fake = FakeStripe()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
