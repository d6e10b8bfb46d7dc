"""``cloud-api provision-lot LOT_ID``: a lot's device account, HTTP token and MQTT password.

The device account (role ``device``, member of the lot) gets a fresh bearer token (earlier tokens
of that account are revoked); the broker gets a password entry for username = lot id through
``mosquitto_passwd -b FILE USER PASSWORD`` (the file is created when missing). The agent's
``[sync]`` section is returned for printing: secrets are shown once and stored nowhere else.
"""

from __future__ import annotations

import logging
import secrets
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cloud_api.auth import issue_token
from cloud_api.models import ApiToken, Lot, LotMember, Role, User
from cloud_api.settings import INGEST_USER, RELAY_USER
from parkgate_protocol import is_lot_id

__all__ = ["RESERVED_USERNAMES", "ProvisionError", "Provisioned", "provision_lot", "sync_section"]

log = logging.getLogger(__name__)

RESERVED_USERNAMES = frozenset({"cloud", RELAY_USER, INGEST_USER})


class ProvisionError(ValueError):
    """The lot cannot be provisioned (reserved name, unknown lot, mosquitto_passwd failed)."""


@dataclass(frozen=True)
class Provisioned:
    lot_id: str
    device_email: str
    device_token: str
    mqtt_username: str
    mqtt_password: str


def _lot_id(text: str) -> int:
    if text.lower() in RESERVED_USERNAMES:
        raise ProvisionError(f"{text!r} is a reserved broker username, not a lot id")
    if not is_lot_id(text) or not text.isdigit():
        raise ProvisionError("LOT_ID must be the cloud's numeric lot id")
    return int(text)


def set_broker_password(
    passwd_file: Path, username: str, password: str, *, binary: str = "mosquitto_passwd"
) -> None:
    create = [] if passwd_file.exists() else ["-c"]
    try:
        subprocess.run(
            [binary, *create, "-b", str(passwd_file), username, password],
            check=True,
            capture_output=True,
            timeout=30,
        )
    except FileNotFoundError as exc:
        raise ProvisionError(f"{binary} not found (apt-get install mosquitto)") from exc
    except subprocess.CalledProcessError as exc:
        message = exc.stderr.decode(errors="replace").strip()
        raise ProvisionError(f"{binary} failed: {message}") from exc


def provision_lot(
    session: Session,
    lot_text: str,
    *,
    passwd_file: Path | None,
    mosquitto_passwd: str = "mosquitto_passwd",
    token_expires_at: datetime | None = None,
) -> Provisioned:
    """Create (or renew) the lot's credentials; the caller commits after this returns."""
    lot_id = _lot_id(lot_text)
    if session.get(Lot, lot_id) is None:
        raise ProvisionError(f"lot {lot_id} does not exist")
    email = f"gate-{lot_id}@devices.parkgate.invalid"
    user = session.scalars(select(User).where(User.email == email)).first()
    if user is None:
        user = User(name=f"gate of lot {lot_id}", email=email, role=Role.DEVICE.value)
        session.add(user)
        session.flush()
        session.add(LotMember(lot_id=lot_id, user_id=user.id))
    else:
        session.execute(update(ApiToken).where(ApiToken.user_id == user.id).values(revoked=True))
    token = issue_token(session, user, expires_at=token_expires_at)
    password = secrets.token_urlsafe(24)
    if passwd_file is not None:
        set_broker_password(passwd_file, str(lot_id), password, binary=mosquitto_passwd)
    session.flush()
    log.info("provisioned lot %s (device %s)", lot_id, email)
    return Provisioned(str(lot_id), email, token, str(lot_id), password)


def sync_section(
    p: Provisioned,
    *,
    broker_host: str,
    broker_port: int,
    cloud_url: str,
    tls_ca: tuple[Path, str] | None = None,
) -> str:
    """The agent config's ``[sync]`` section (and the lot id it must use). ``tls_ca`` is the
    broker's CA certificate here and the path the lot keeps its copy at: the section then
    connects with TLS and says which file to copy."""
    lines = [
        f'# [lot] id must be "{p.lot_id}"',
        "[sync]",
        "enabled = true",
        f'broker_host = "{broker_host}"',
        f"broker_port = {broker_port}",
        f'username = "{p.mqtt_username}"',
        f'password = "{p.mqtt_password}"',
        f'cloud_url = "{cloud_url}"',
        f'device_token = "{p.device_token}"',
    ]
    if tls_ca is not None:
        here, on_lot = tls_ca
        lines.insert(1, f"# copy {here} to the lot as {on_lot} (install-pi.sh --broker-ca FILE)")
        lines.append(f'tls_ca_file = "{on_lot}"')
    return "\n".join([*lines, ""])
