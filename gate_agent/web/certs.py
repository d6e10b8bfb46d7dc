"""A self-signed certificate for the agent's web UI (``gate-agent make-cert``) and its fingerprint.

The booth LAN has no public name, so no public CA will sign for it: the installer makes a
self-signed certificate with ``openssl`` (present on every Raspberry Pi OS) and operators check
the SHA-256 fingerprint the command prints against the one their browser shows the first time.
An operator with their own CA points ``web.tls_cert_file``/``web.tls_key_file`` at its files
instead.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import os
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

__all__ = ["CertError", "fingerprint", "make_self_signed"]

EC_P256 = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1")
OPENSSL_REQ = ("openssl", "req", "-x509", "-nodes", "-sha256", *EC_P256)
PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", re.S)


class CertError(RuntimeError):
    """The certificate could not be made or read."""


def _subject_alt_names(hosts: Sequence[str]) -> str:
    names = []
    for host in hosts:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            names.append(f"DNS:{host}")
        else:
            names.append(f"IP:{host}")
    return ",".join(names)


def make_self_signed(cert: Path, key: Path, hosts: Sequence[str], days: int = 825) -> str:
    """Write a new EC P-256 key (mode 0600) and a self-signed certificate for ``hosts``; returns
    the certificate's SHA-256 fingerprint."""
    if not hosts:
        raise CertError("name at least one host name or address the operators will browse to")
    for path in (cert, key):
        path.parent.mkdir(parents=True, exist_ok=True)
    key.touch(mode=0o600, exist_ok=True)
    os.chmod(key, 0o600)  # before openssl writes the key into it
    command = [*OPENSSL_REQ, "-days", str(days), "-keyout", str(key), "-out", str(cert)]
    command += ["-subj", f"/CN={hosts[0]}"]
    command += ["-addext", f"subjectAltName={_subject_alt_names(hosts)}"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CertError(f"could not run openssl: {exc}") from exc
    if done.returncode != 0:
        raise CertError(f"openssl failed: {done.stderr.strip()[-500:]}")
    os.chmod(key, 0o600)
    return fingerprint(cert)


def fingerprint(cert: Path) -> str:
    """The SHA-256 fingerprint of the first certificate in a PEM file, as browsers show it."""
    match = PEM_CERT.search(cert.read_bytes())
    if match is None:
        raise CertError(f"{cert} holds no PEM certificate")
    der = base64.b64decode(b"".join(match.group(1).split()))
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))
