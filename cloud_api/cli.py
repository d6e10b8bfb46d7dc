"""``cloud-api`` command line: serve, worker, sync, migrate, demo-data, provision-lot, broker-tls.

Every command builds the settings once, here, from its flags and the environment
(:func:`cloud_api.settings.load_settings`); a value that cannot work is printed per field and the
command exits 2. The daemons are put together in :mod:`cloud_api.daemons`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from cloud_api.settings import Settings, SettingsError, load_settings

__all__ = ["build_parser", "main"]

log = logging.getLogger(__name__)

DB_HELP = "SQLAlchemy URL (default $PARKGATE_DATABASE_URL)"
AGENT_CA_PATH = "/etc/parkgate/broker-ca.crt"  # where scripts/install-pi.sh --broker-ca puts it


def _settings(args: argparse.Namespace, **defaults: object) -> Settings:
    flags = {"database_url": args.database_url, "redis_url": getattr(args, "redis_url", None)}
    return load_settings(flags=flags, defaults=defaults)


def _serve(args: argparse.Namespace) -> int:
    from cloud_api.daemons import run_api

    settings = _settings(args, public_url=f"http://{args.host}:{args.port}")
    return run_api(
        settings,
        host=args.host,
        port=args.port,
        workers=args.workers,
        with_worker=args.with_worker,
    )


def _worker(args: argparse.Namespace) -> int:
    from cloud_api.daemons import run_worker

    return run_worker(_settings(args), idle_seconds=args.idle_seconds)


def _sync(args: argparse.Namespace) -> int:
    from cloud_api.daemons import run_sync

    return run_sync(_settings(args), poll_interval=args.poll_interval)


def _migrate(args: argparse.Namespace) -> int:
    from cloud_api.migrate import upgrade

    upgrade(_settings(args).database_url)
    return 0


def _provision(args: argparse.Namespace) -> int:
    from cloud_api.db import make_engine, make_sessionmaker
    from cloud_api.lot_sync import ProvisionError, provision_lot, sync_section
    from cloud_api.migrate import upgrade
    from cloud_api.models import utcnow

    ca = Path(args.tls_ca_file) if args.tls_ca_file else None
    if ca is not None and not ca.is_file():
        print(f"cloud-api provision-lot: no CA certificate at {ca}", file=sys.stderr)
        return 2
    settings = _settings(args)
    upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine)() as session:
            passwd = Path(args.passwd_file) if args.passwd_file else None
            expires = utcnow() + timedelta(days=settings.device_token_lifetime_days)
            done = provision_lot(session, args.lot_id, passwd_file=passwd, token_expires_at=expires)
            session.commit()
    except ProvisionError as exc:
        print(f"cloud-api provision-lot: {exc}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    port = args.broker_port or (8883 if ca else 1883)
    section = sync_section(
        done,
        broker_host=args.broker_host,
        broker_port=port,
        cloud_url=args.cloud_url,
        tls_ca=(ca, args.agent_ca_path) if ca else None,
    )
    print(section)
    return 0


def _broker_tls(args: argparse.Namespace) -> int:
    from cloud_api.lot_sync import BrokerTlsError, make_broker_tls

    try:
        tls = make_broker_tls(Path(args.dir), args.hostname)
    except BrokerTlsError as exc:
        print(f"cloud-api broker-tls: {exc}", file=sys.stderr)
        return 2
    print(f"CA certificate (hand it to every lot: provision-lot --tls-ca-file): {tls.ca_cert}")
    print(f"server certificate and key (mosquitto.conf): {tls.server_cert} {tls.server_key}")
    print("let the broker read them (chown mosquitto), then: systemctl restart mosquitto")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from cloud_api.db import make_engine, make_sessionmaker
    from cloud_api.migrate import upgrade
    from cloud_api.seed import demo_data

    settings = _settings(args)
    upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    with make_sessionmaker(engine)() as session:
        data = demo_data(session)
        session.commit()
    engine.dispose()
    if args.json:
        print(json.dumps(data))
    else:
        for user in data["users"]:
            print(f"{user['role']:9} {user['email']:40} {user['token']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cloud-api", description="ParkGate cloud booking API")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP API (migrates first)")
    serve.add_argument("--database-url", help=DB_HELP)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    serve.add_argument("--redis-url", help="redis:// URL enabling the availability cache")
    serve.add_argument(
        "--with-worker",
        action="store_true",
        help="also run the outbox worker (payments, emails) in this process (single machine)",
    )
    serve.set_defaults(func=_serve)

    worker = sub.add_parser("worker", help="run the outbox worker: payments, emails, reminders")
    worker.add_argument("--database-url", help=DB_HELP)
    worker.add_argument(
        "--idle-seconds", type=float, default=1.0, help="wait this long when the outbox is empty"
    )
    worker.set_defaults(func=_worker)

    migrate = sub.add_parser("migrate", help="apply the database migrations")
    migrate.add_argument("--database-url", help=DB_HELP)
    migrate.set_defaults(func=_migrate)

    demo = sub.add_parser("demo-data", help="create a demo lot, customer, operator and device")
    demo.add_argument("--database-url", help=DB_HELP)
    demo.add_argument("--json", action="store_true", help="print lots and users (tokens) as JSON")
    demo.set_defaults(func=_demo)
    _add_sync_commands(sub)
    return parser


def _add_sync_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sync = sub.add_parser("sync", help="run the MQTT relay and event ingest")
    sync.add_argument("--database-url", help=DB_HELP)
    sync.add_argument("--poll-interval", type=float, default=0.05, help="relay poll (seconds)")
    sync.set_defaults(func=_sync)

    prov = sub.add_parser("provision-lot", help="a lot's device token and broker password")
    prov.add_argument("lot_id", metavar="LOT_ID")
    prov.add_argument("--database-url", help=DB_HELP)
    prov.add_argument("--passwd-file", help="Mosquitto password file to add the lot to")
    prov.add_argument("--broker-host", default="127.0.0.1", help="as the agent reaches it")
    prov.add_argument("--broker-port", type=int, help="default 8883 with --tls-ca-file, else 1883")
    prov.add_argument("--cloud-url", default="http://127.0.0.1:8000", help="API base URL")
    prov.add_argument("--tls-ca-file", help="the broker's CA certificate (cloud-api broker-tls)")
    prov.add_argument(
        "--agent-ca-path",
        default=AGENT_CA_PATH,
        help=f"where the lot keeps that CA certificate (default {AGENT_CA_PATH})",
    )
    prov.set_defaults(func=_provision)

    tls = sub.add_parser("broker-tls", help="the broker's CA and server certificate (openssl)")
    tls.add_argument("--dir", required=True, help="e.g. /etc/mosquitto/parkgate/tls")
    tls.add_argument(
        "--hostname",
        action="append",
        required=True,
        help="a name or address lots dial as broker_host (repeat for more)",
    )
    tls.set_defaults(func=_broker_tls)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s"
    )
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except SettingsError as exc:
        print(f"cloud-api {args.command}: the settings cannot work:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
