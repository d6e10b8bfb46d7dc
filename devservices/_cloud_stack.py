"""A whole cloud in this process for end-to-end tests and ``bench.sync``: a migrated database
(SQLite, or the PostgreSQL URL given), a secured Mosquitto (the shipped ACL, a password per lot
via ``provision_lot``), the API served by uvicorn on a real port with the relay woken on commit,
and the ingest. ``http`` is a customer's client, ``admin`` an administrator's."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from sqlalchemy import func, select

from cloud_api.app import create_app
from cloud_api.db import make_engine, make_sessionmaker
from cloud_api.lot_sync import (
    GateEventRecord,
    Ingest,
    Provisioned,
    Relay,
    provision_lot,
    wake_on_commit,
)
from cloud_api.migrate import upgrade
from cloud_api.models import Booking, Role
from cloud_api.seed import add_lot, add_user
from cloud_api.settings import INGEST_USER, RELAY_USER, BrokerSettings, Settings
from devservices._mosquitto import MosquittoInstance, secured_broker, write_password_file
from devservices._wait import free_port, wait_for

__all__ = ["CLOUD_PASSWORD", "CLOUD_USERS", "CloudStack"]

CLOUD_PASSWORD = "cloud-secret"
# the relay's and the ingest's logins, and the tool account test peers use as "the cloud"
CLOUD_USERS = {name: CLOUD_PASSWORD for name in (RELAY_USER, INGEST_USER, "cloud")}
FREE = {"car": (0, 0)}  # free bookings are confirmed at once (no payment round trip)


@dataclass
class CloudStack:
    workdir: Path
    lots: int = 1
    spaces: int = 50
    poll_interval: float = 0.05
    broker_config: str = ""  # appended to the broker's config (later lines win)
    database_url: str = ""  # SQLAlchemy URL of an empty database; "" = SQLite in the workdir
    broker: MosquittoInstance = field(init=False)
    lot_ids: list[int] = field(default_factory=list)
    devices: dict[int, Provisioned] = field(default_factory=dict)
    customer_token: str = ""
    admin_token: str = ""
    base_url: str = ""

    def start(self) -> CloudStack:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.url = self.database_url or f"sqlite:///{self.workdir / 'cloud.db'}"
        upgrade(self.url)
        self.broker = secured_broker(
            self.workdir / "mqtt", CLOUD_USERS, extra_config=self.broker_config
        )
        passwd = self.broker.password_file
        assert passwd is not None  # secured_broker always writes one
        engine = make_engine(self.url)
        with make_sessionmaker(engine)() as s:
            for n in range(self.lots):
                lot = add_lot(s, f"Lot {n}", {"car": self.spaces}, prices=FREE)
                self.lot_ids.append(lot.id)
            self.customer_token = add_user(s, "driver@example.test", Role.CUSTOMER).token
            self.admin_token = add_user(s, "admin@example.test", Role.ADMIN).token
            for lot_id in self.lot_ids:
                # one mosquitto_passwd run per lot is slow for 1,000 lots: the bench writes them
                self.devices[lot_id] = provision_lot(
                    s, str(lot_id), passwd_file=passwd if self.lots <= 5 else None
                )
            s.commit()
        engine.dispose()
        if self.lots > 5:
            lots = {str(i): d.mqtt_password for i, d in self.devices.items()}
            write_password_file(passwd, {**CLOUD_USERS, **lots})
        self.broker.start()
        self.mqtt = BrokerSettings(
            host=self.broker.host, port=self.broker.port, password=CLOUD_PASSWORD
        )
        port = free_port()  # the app's public URL: its pay pages and local webhooks point here
        public_url = f"http://127.0.0.1:{port}"
        app = create_app(
            Settings(database_url=self.url, hold_sweep_seconds=0, public_url=public_url)
        )
        self.sessions = app.state.sessions
        self.relay = Relay(self.sessions, self.mqtt, poll_interval=self.poll_interval)
        wake_on_commit(self.sessions, self.relay)
        self.ingest = Ingest(self.sessions, self.mqtt)
        self.relay.start()
        self.ingest.start()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", access_log=False
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)
        self._thread.start()
        self.base_url = f"http://127.0.0.1:{port}"
        wait_for(lambda: self.server.started, timeout=20, what="uvicorn")
        wait_for(self.ingest.connected.is_set, timeout=10, what="ingest connected")
        wait_for(lambda: self.relay.connected, timeout=10, what="relay connected")
        auth = {"Authorization": f"Bearer {self.customer_token}"}
        self.http = httpx.Client(base_url=self.base_url, timeout=10, headers=auth)
        admin = {"Authorization": f"Bearer {self.admin_token}"}
        self.admin = httpx.Client(base_url=self.base_url, timeout=10, headers=admin)
        return self

    def stop(self) -> None:
        self.http.close()
        self.admin.close()
        self.server.should_exit = True
        self._thread.join(10)
        self.ingest.stop()
        self.relay.stop()
        self.broker.stop()

    def agent_sync(self, lot_id: int) -> dict[str, Any]:
        device = self.devices[lot_id]
        return {
            "enabled": True,
            "broker_host": self.broker.host,
            "broker_port": self.broker.port,
            "username": device.mqtt_username,
            "password": device.mqtt_password,
            "cloud_url": self.base_url,
            "device_token": device.device_token,
            "heartbeat_seconds": 5,
        }

    def book(self, lot_id: int, plate: str, start: datetime, hours: float = 2) -> str:
        body = {
            "parking_lot_id": lot_id,
            "vehicle_plate": plate,
            "start_time": start.isoformat(),
            "end_time": (start + timedelta(hours=hours)).isoformat(),
        }
        response = self.http.post("/bookings", json=body)
        assert response.status_code == 201, response.text
        return str(response.json()["booking_id"])

    def booking(self, booking_id: str) -> Booking:
        with self.sessions() as s:
            found = s.get(Booking, booking_id)
            assert found is not None
            return found

    def event_ids(self) -> list[str]:
        with self.sessions() as s:
            return list(s.scalars(select(GateEventRecord.event_id)))

    def event_count(self) -> int:
        with self.sessions() as s:
            return int(s.scalar(select(func.count()).select_from(GateEventRecord)) or 0)
