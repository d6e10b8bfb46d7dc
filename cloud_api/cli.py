"""``cloud-api`` command line: serve, worker, migrate, demo-data."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from cloud_api.settings import Settings

__all__ = ["build_parser", "main"]

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cloud-api", description="ParkGate cloud booking API")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP API (migrates first)")
    serve.add_argument("--database-url", help="SQLAlchemy URL (default $PARKGATE_DATABASE_URL)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    serve.add_argument("--redis-url", help="redis:// URL enabling the availability cache")
    serve.add_argument(
        "--with-worker",
        action="store_true",
        help="also run the outbox worker (payments, emails) in this process (single machine)",
    )
    worker = sub.add_parser("worker", help="run the outbox worker: payments, emails, reminders")
    worker.add_argument("--database-url")
    worker.add_argument(
        "--idle-seconds", type=float, default=1.0, help="wait this long when the outbox is empty"
    )
    migrate = sub.add_parser("migrate", help="apply the database migrations")
    migrate.add_argument("--database-url")
    demo = sub.add_parser("demo-data", help="create a demo lot, customer, operator and device")
    demo.add_argument("--database-url")
    demo.add_argument("--json", action="store_true", help="print lots and users (tokens) as JSON")
    _add_sync_commands(sub)
    return parser


def _add_sync_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sync = sub.add_parser("sync", help="run the MQTT relay and event ingest")
    sync.add_argument("--database-url")
    sync.add_argument("--poll-interval", type=float, default=0.05, help="relay poll (seconds)")
    prov = sub.add_parser("provision-lot", help="a lot's device token and broker password")
    prov.add_argument("lot_id", metavar="LOT_ID")
    prov.add_argument("--database-url")
    prov.add_argument("--passwd-file", help="Mosquitto password file to add the lot to")
    prov.add_argument("--broker-host", default="127.0.0.1", help="as the agent reaches it")
    prov.add_argument("--broker-port", type=int, default=1883)
    prov.add_argument("--cloud-url", default="http://127.0.0.1:8000", help="API base URL")


def _sync_command(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cloud_api.migrate import upgrade
    from cloud_api.mqtt import BrokerSettings

    settings = _settings(args)
    upgrade(settings.database_url)
    if args.command == "sync":
        from cloud_api.sync_service import run_sync

        return run_sync(settings.database_url, BrokerSettings.from_env(),
                        poll_interval=args.poll_interval)  # fmt: skip
    from cloud_api.db import make_engine, make_sessionmaker
    from cloud_api.provision import ProvisionError, provision_lot, sync_section

    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine)() as session:
            passwd = Path(args.passwd_file) if args.passwd_file else None
            done = provision_lot(session, args.lot_id, passwd_file=passwd)
            session.commit()
    except ProvisionError as exc:
        print(f"cloud-api provision-lot: {exc}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    print(sync_section(done, broker_host=args.broker_host, broker_port=args.broker_port,
                       cloud_url=args.cloud_url))  # fmt: skip
    return 0


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(
        database_url=args.database_url, redis_url=getattr(args, "redis_url", None)
    )


def _serve(args: argparse.Namespace) -> int:
    import dataclasses
    import os
    import threading

    from cloud_api.migrate import upgrade
    from cloud_api.runtime import (
        SECRET_ENV,
        ConfigError,
        resolve_webhook_secret,
        start_worker_thread,
    )
    from cloud_api.serving import serve

    settings = _settings(args)
    try:
        secret = resolve_webhook_secret(settings)  # once: every worker process uses the same
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    upgrade(settings.database_url)
    settings = dataclasses.replace(settings, webhook_secret=secret)
    os.environ[SECRET_ENV] = secret
    os.environ["PARKGATE_DATABASE_URL"] = settings.database_url
    if settings.redis_url:
        os.environ["PARKGATE_REDIS_URL"] = settings.redis_url
    os.environ.setdefault("PARKGATE_PUBLIC_URL", f"http://{args.host}:{args.port}")
    stop = threading.Event()
    if args.with_worker:
        start_worker_thread(Settings.from_env(webhook_secret=secret), stop)
    serve(args.host, args.port, args.workers, log_level="warning", access_log=False)
    stop.set()
    return 0


def _worker(args: argparse.Namespace) -> int:
    import signal
    import threading

    from cloud_api.db import make_engine, make_sessionmaker
    from cloud_api.runtime import ConfigError, build_outbox_worker

    settings = _settings(args)
    try:
        worker = build_outbox_worker(
            settings, make_sessionmaker(make_engine(settings.database_url))
        )
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    worker.run_forever(stop, idle_seconds=args.idle_seconds)
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


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s"
    )
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "worker":
        return _worker(args)
    if args.command in ("sync", "provision-lot"):
        return _sync_command(args)
    if args.command == "migrate":
        from cloud_api.migrate import upgrade

        upgrade(_settings(args).database_url)
        return 0
    return _demo(args)


if __name__ == "__main__":
    sys.exit(main())
