"""Issue 14 finding 7 (agent part): sessions end at logout; the login throttle is per user and
address, atomic, and pruned.

Before the fix a session cookie stayed valid after logout (it was only signed, never recorded),
five bad passwords from anywhere locked the operator out everywhere, and parallel guesses could
all pass the "fewer than five failures" check before any of them was counted.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.attacks.conftest import csrf_of, logged_in


def test_a_copied_session_cookie_is_dead_after_logout(base_url: str) -> None:
    with httpx.Client(base_url=base_url, follow_redirects=False) as client:
        assert logged_in(client).status_code == 303
        stolen = client.cookies["pg_session"]
        page = client.get("/")
        assert page.status_code == 200
        assert client.post("/logout", data={"csrf": csrf_of(page.text)}).status_code == 303
    with httpx.Client(base_url=base_url, follow_redirects=False) as thief:
        thief.cookies.set("pg_session", stolen)
        assert thief.get("/").status_code == 303  # to /login
        assert thief.get("/api/status").status_code == 401


def attempt(base_url: str, address: str, password: str) -> int:
    transport = httpx.HTTPTransport(local_address=address)
    with httpx.Client(base_url=base_url, transport=transport, follow_redirects=False) as client:
        return logged_in(client, password).status_code


def test_guessing_from_one_address_does_not_lock_the_operator_out_elsewhere(
    base_url: str,
) -> None:
    for _ in range(5):
        assert attempt(base_url, "127.0.0.2", "guess") == 401
    assert attempt(base_url, "127.0.0.2", "guess") == 429
    assert attempt(base_url, "127.0.0.2", "correct horse battery") == 429  # not even checked
    assert attempt(base_url, "127.0.0.1", "correct horse battery") == 303  # the booth still can


def test_parallel_guesses_cannot_slip_past_the_limit(base_url: str) -> None:
    with ThreadPoolExecutor(max_workers=12) as pool:
        codes = list(pool.map(lambda _: attempt(base_url, "127.0.0.3", "guess"), range(12)))
    assert sorted(codes) == [401] * 5 + [429] * 7, codes
