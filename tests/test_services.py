"""The private service fixtures start and answer."""

from __future__ import annotations

import threading

import paho.mqtt.client as mqtt
import psycopg

from devservices import MosquittoInstance, PostgresInstance


def test_mosquitto_starts_and_routes_a_message(mosquitto: MosquittoInstance) -> None:
    got = threading.Event()
    received: list[bytes] = []

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        received.append(msg.payload)
        got.set()

    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    sub.on_message = on_message
    sub.connect(mosquitto.host, mosquitto.port)
    sub.subscribe("t/1", qos=1)
    sub.loop_start()
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    pub.connect(mosquitto.host, mosquitto.port)
    pub.loop_start()
    try:
        # the subscription may land after the first publish; retry until one arrives
        for _ in range(50):
            pub.publish("t/1", b"hello", qos=1).wait_for_publish(2)
            if got.wait(0.1):
                break
        assert received and received[0] == b"hello"
    finally:
        pub.loop_stop()
        sub.loop_stop()
        pub.disconnect()
        sub.disconnect()


def test_mosquitto_restarts_on_the_same_port(mosquitto: MosquittoInstance) -> None:
    port = mosquitto.port
    mosquitto.restart()
    assert mosquitto.running and mosquitto.port == port


def test_postgres_starts_and_answers(postgres_server: PostgresInstance) -> None:
    with psycopg.connect(postgres_server.dsn()) as conn:
        version = conn.execute("show server_version").fetchone()
    assert version is not None and version[0].split(".")[0].isdigit()


def test_postgres_has_btree_gist_for_exclusion_constraints(postgres_db: str) -> None:
    dsn = postgres_db.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("create extension if not exists btree_gist")
        conn.execute(
            "create table b (space int, during tstzrange,"
            " exclude using gist (space with =, during with &&))"
        )
        conn.execute("insert into b values (1, tstzrange(now(), now() + interval '1 hour'))")
        try:
            conn.execute("insert into b values (1, tstzrange(now(), now() + interval '2 hour'))")
        except psycopg.errors.ExclusionViolation:
            pass
        else:
            raise AssertionError("overlap was accepted")


def test_postgres_keeps_answering_once_its_log_outgrows_a_pipe(
    postgres_server: PostgresInstance,
) -> None:
    """Every ERROR and WARNING goes to the server's log; a backend that cannot write it blocks
    for good with its transaction open (the chaos test's stuck ingest and API: a pipe nobody
    read, 64 KB). 256 KB of warnings must not stop the server answering, and land in its log."""
    done = threading.Event()
    failure: list[BaseException] = []
    marker = "log-overflow-probe"

    def warn_a_lot() -> None:
        try:
            with psycopg.connect(postgres_server.dsn(), autocommit=True) as conn:
                for _ in range(64):
                    conn.execute(
                        f"DO $$ BEGIN RAISE WARNING '{marker} %', repeat('x', 4096); END $$"
                    )
                conn.execute("select 1")
            done.set()
        except BaseException as exc:
            failure.append(exc)

    threading.Thread(target=warn_a_lot, daemon=True).start()
    assert done.wait(30), failure or "a backend blocked writing the server log"
    assert postgres_server.log_text().count(marker) >= 64
