"""Local services for the tests, the bench and ``make demo``, run from the repository checkout.

Not part of the product (no wheel ships it): private instances of the real services on free
ports (Mosquitto, PostgreSQL, Redis, an SMTP sink), the cloud API as a server process or as a
whole in-process cloud, and waiting with a deadline instead of sleeping.

- ``free_port``, ``wait_for``, ``wait_for_port``: ports and polling.
- ``MosquittoInstance``; ``secured_broker`` is the one way to a broker secured like production
  (the shipped ``config/mosquitto/mosquitto.conf`` and ``acl`` made local by ``shipped_config``,
  a password file for given users, optionally its TLS listener).
- ``PostgresInstance``, ``RedisInstance``, ``LocalInbox`` (SMTP).
- ``seed_world``/``World``, ``serve_process``/``running_server``: ``cloud-api serve``, free port.
- ``CloudStack``: API, relay, ingest and a secured broker in this process, with provisioned lots.

A binary that is not installed raises ``MissingBinary`` (a ``RuntimeError``) naming its package.
"""

from devservices._cloud_server import World, running_server, seed_world, serve_process
from devservices._cloud_stack import CLOUD_PASSWORD, CLOUD_USERS, CloudStack
from devservices._mosquitto import (
    SHIPPED_ACL,
    SHIPPED_CONF,
    MosquittoInstance,
    secured_broker,
    shipped_config,
    write_password_file,
)
from devservices._postgres import PostgresInstance
from devservices._process import REPO_ROOT, MissingBinary
from devservices._redis import RedisInstance
from devservices._smtp import LocalInbox
from devservices._wait import free_port, wait_for, wait_for_port

__all__ = [
    "CLOUD_PASSWORD",
    "CLOUD_USERS",
    "REPO_ROOT",
    "SHIPPED_ACL",
    "SHIPPED_CONF",
    "CloudStack",
    "LocalInbox",
    "MissingBinary",
    "MosquittoInstance",
    "PostgresInstance",
    "RedisInstance",
    "World",
    "free_port",
    "running_server",
    "secured_broker",
    "seed_world",
    "serve_process",
    "shipped_config",
    "wait_for",
    "wait_for_port",
    "write_password_file",
]
