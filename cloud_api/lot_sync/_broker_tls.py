"""``cloud-api broker-tls``: the broker's TLS files, made with the ``openssl`` command.

One directory (production: ``/etc/mosquitto/parkgate/tls``, as the shipped ``mosquitto.conf``
names it) holds a private CA (``ca.crt``, ``ca.key``) and the broker's server certificate
(``server.crt``, ``server.key``) signed by it for the host names and addresses the lots dial.
The CA is made once and kept on later runs, so the ``ca.crt`` each lot was given stays valid
when the server certificate is renewed (run again before ``server.crt`` expires, or to add a
host name). Keys are written owner-only; the broker's user must be able to read ``server.key``.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BrokerTls", "BrokerTlsError", "make_broker_tls"]

log = logging.getLogger(__name__)

CA_DAYS = 3650
SERVER_DAYS = 825  # the longest validity clients accept for a server certificate
CURVE = "prime256v1"
NEW_KEY = ["-nodes", "-newkey", "ec", "-pkeyopt", f"ec_paramgen_curve:{CURVE}"]


class BrokerTlsError(ValueError):
    """The TLS files cannot be made (no openssl, bad host name, openssl failed)."""


@dataclass(frozen=True)
class BrokerTls:
    """Where the files are; ``ca_cert`` is the one handed to every lot."""

    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.directory / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.directory / "server.key"


def subject_alt_names(hostnames: list[str]) -> str:
    """``DNS:name`` or ``IP:address`` for each host name, as openssl's subjectAltName wants."""
    if not hostnames:
        raise BrokerTlsError("give at least one --hostname (the name lots use as broker_host)")
    names = []
    for name in hostnames:
        try:
            names.append(f"IP:{ipaddress.ip_address(name)}")
        except ValueError:
            if not name or any(c in name for c in ",:/= \t\n") or name.startswith("-"):
                raise BrokerTlsError(f"{name!r} is not a host name or an IP address") from None
            names.append(f"DNS:{name}")
    return ",".join(names)


def _openssl(args: list[str], binary: str) -> None:
    try:
        subprocess.run([binary, *args], check=True, capture_output=True, timeout=60)
    except FileNotFoundError as exc:
        raise BrokerTlsError(f"{binary} not found (apt-get install openssl)") from exc
    except subprocess.CalledProcessError as exc:
        message = exc.stderr.decode(errors="replace").strip()
        raise BrokerTlsError(f"{binary} {args[0]} failed: {message}") from exc


def _new_ca(tls: BrokerTls, binary: str) -> None:
    _openssl(
        [
            *("req", "-x509", "-new", *NEW_KEY, "-subj", "/CN=ParkGate broker CA"),
            *("-keyout", str(tls.ca_key), "-out", str(tls.ca_cert), "-days", str(CA_DAYS)),
            *("-addext", "basicConstraints=critical,CA:TRUE,pathlen:0"),
            *("-addext", "keyUsage=critical,keyCertSign,cRLSign"),
        ],
        binary,
    )
    tls.ca_key.chmod(0o600)
    log.info("broker TLS: new CA %s", tls.ca_cert)


def _new_server_cert(tls: BrokerTls, hostnames: list[str], binary: str) -> None:
    extensions = "\n".join(
        [
            "basicConstraints=critical,CA:FALSE",
            "keyUsage=critical,digitalSignature,keyEncipherment",
            "extendedKeyUsage=serverAuth",
            f"subjectAltName={subject_alt_names(hostnames)}",
            "subjectKeyIdentifier=hash",
            "authorityKeyIdentifier=keyid,issuer",
        ]
    )
    with tempfile.TemporaryDirectory() as scratch:
        csr, ext = Path(scratch) / "server.csr", Path(scratch) / "server.ext"
        ext.write_text(extensions + "\n")
        _openssl(
            [
                *("req", "-new", *NEW_KEY, "-subj", f"/CN={hostnames[0]}"),
                *("-keyout", str(tls.server_key), "-out", str(csr)),
            ],
            binary,
        )
        tls.server_key.chmod(0o600)
        _openssl(
            [
                *("x509", "-req", "-in", str(csr), "-out", str(tls.server_cert)),
                *("-CA", str(tls.ca_cert), "-CAkey", str(tls.ca_key), "-extfile", str(ext)),
                *("-set_serial", f"0x{secrets.token_hex(16)}", "-days", str(SERVER_DAYS)),
            ],
            binary,
        )
    log.info("broker TLS: server certificate %s for %s", tls.server_cert, ", ".join(hostnames))


def make_broker_tls(
    directory: Path, hostnames: list[str], *, openssl: str = "openssl"
) -> BrokerTls:
    """Make (or renew) the broker's server certificate in ``directory``, making the CA first
    when there is none; returns where the files are."""
    subject_alt_names(hostnames)  # refuse a bad name before touching anything
    tls = BrokerTls(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if not (tls.ca_cert.exists() and tls.ca_key.exists()):
        _new_ca(tls, openssl)
    _new_server_cert(tls, hostnames, openssl)
    return tls
