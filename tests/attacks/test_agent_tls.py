"""Issue 14 finding 4: the status page is served over HTTPS, its cookie marked Secure.

Before the fix the agent only spoke plain HTTP, even on the booth LAN where the operator guide
sends phones: passwords, session cookies and manual-open requests travelled in clear. Now a
non-loopback ``web.host`` without a certificate is a config error, ``gate-agent make-cert`` makes
a self-signed certificate and prints its SHA-256 fingerprint, and the agent serves it.
"""

from __future__ import annotations

import hashlib
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from gpiozero.pins.mock import MockFactory

from gate_agent.config import ConfigError, parse_config
from gate_agent.recognition import Recognizer
from tests.attacks.conftest import csrf_of, logged_in, start_agent
from tests.gate_agent.test_web_api import web_agent_config


def make_cert(tmp_path: Path) -> tuple[Path, Path, str]:
    cert, key = tmp_path / "tls" / "cert.pem", tmp_path / "tls" / "key.pem"
    command = [sys.executable, "-m", "gate_agent.cli", "make-cert", "--cert", str(cert)]
    done = subprocess.run(
        [*command, "--key", str(key), "127.0.0.1", "parkgate.local"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    line = next(x for x in done.stdout.splitlines() if x.startswith("SHA-256 fingerprint: "))
    assert key.stat().st_mode & 0o077 == 0, "the private key must be readable by its owner only"
    return cert, key, line.split(": ", 1)[1]


def test_the_lan_needs_a_certificate(tmp_path: Path, operator_hash: str) -> None:
    config = web_agent_config(tmp_path, tmp_path, operator_hash)
    config["web"]["host"] = "0.0.0.0"
    with pytest.raises(ConfigError, match=r"web\.tls_cert_file"):
        parse_config(config)
    config["web"].update(tls_cert_file="/etc/c.pem", tls_key_file="/etc/k.pem")
    assert parse_config(config).web.tls
    config["web"].pop("tls_key_file")
    with pytest.raises(ConfigError, match="go together"):
        parse_config(config)
    for loopback in ("127.0.0.1", "::1", "localhost"):  # plain HTTP stays on this machine
        config["web"] = {"host": loopback}
        assert not parse_config(config).web.tls


def test_https_with_a_made_certificate_and_a_secure_cookie(
    tmp_path: Path, recognizer: Recognizer, pins: MockFactory, operator_hash: str
) -> None:
    cert, key, printed = make_cert(tmp_path)
    agent = start_agent(
        tmp_path, recognizer, pins, operator_hash, tls_cert_file=str(cert), tls_key_file=str(key)
    )
    try:
        assert agent.web is not None and agent.web.url.startswith("https://")
        served = ssl.get_server_certificate(("127.0.0.1", agent.web.port))
        digest = hashlib.sha256(ssl.PEM_cert_to_DER_cert(served)).hexdigest().upper()
        assert printed == ":".join(digest[i : i + 2] for i in range(0, 64, 2))
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.get(f"http://127.0.0.1:{agent.web.port}/healthz")  # no plain HTTP on it
        trust = ssl.create_default_context(cafile=str(cert))
        with httpx.Client(base_url=agent.web.url, verify=trust, follow_redirects=False) as client:
            response = logged_in(client)
            assert response.status_code == 303
            cookie = response.headers["set-cookie"].lower()
            assert "secure" in cookie and "httponly" in cookie and "samesite=strict" in cookie
            page = client.get("/")
            assert page.status_code == 200 and csrf_of(page.text)
            assert page.headers["strict-transport-security"].startswith("max-age=")
    finally:
        agent.stop()


def test_make_cert_without_openssl_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from gate_agent.cli import main

    monkeypatch.setenv("PATH", str(tmp_path))  # no openssl there
    args = ["make-cert", "--cert", str(tmp_path / "c.pem"), "--key", str(tmp_path / "k.pem")]
    assert main([*args, "10.0.0.5"]) == 2
    assert "could not run openssl" in capsys.readouterr().err
