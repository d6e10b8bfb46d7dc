"""A private Mosquitto broker, anonymous or secured like production (the shipped config and ACL)."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path

from devservices._process import REPO_ROOT, find_binary, stop_process
from devservices._wait import free_port, wait_for_port

__all__ = [
    "SHIPPED_ACL",
    "SHIPPED_CONF",
    "MosquittoInstance",
    "secured_broker",
    "shipped_config",
    "write_password_file",
]

SHIPPED_ACL = REPO_ROOT / "config" / "mosquitto" / "acl"
SHIPPED_CONF = REPO_ROOT / "config" / "mosquitto" / "mosquitto.conf"
INSTALL_DIR = "/etc/mosquitto/parkgate/"
PLAIN_LISTENER = "listener 1883 127.0.0.1"
TLS_LISTENER = "listener 8883"
# what a test broker changes in the shipped config (the rest, ACL and client-id rules included,
# is production's): its own files, a fast autosave, room for the benchmarks' queues
LOCAL_SETTINGS = {"autosave_interval": "1", "max_queued_messages": "100000"}


def shipped_config(
    workdir: Path,
    port: int,
    password_file: Path,
    *,
    tls_dir: Path | None = None,
    tls_port: int | None = None,
) -> list[str]:
    """``config/mosquitto/mosquitto.conf`` made local: files under ``workdir``, the plain
    listener on 127.0.0.1:``port``, the TLS listener on 127.0.0.1:``tls_port`` with the files
    in ``tls_dir`` (``cloud-api broker-tls``) or left out without them, log to a file."""
    lines: list[str] = []
    in_tls_listener = False
    for raw in SHIPPED_CONF.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("listener "):
            in_tls_listener = line == TLS_LISTENER
            line = _local_listener(line, port, tls_port if tls_dir else None)
        if in_tls_listener and tls_dir is None:
            continue
        name = line.split()[0]
        if name == "log_dest":
            line = f"log_dest file {workdir / 'mosquitto.log'}"
        elif name == "persistence_location":
            line = f"persistence_location {workdir}/"
        elif name in LOCAL_SETTINGS:
            line = f"{name} {LOCAL_SETTINGS[name]}"
        line = line.replace(f"{INSTALL_DIR}passwd", str(password_file))
        line = line.replace(f"{INSTALL_DIR}acl", str(SHIPPED_ACL))
        if tls_dir is not None:
            line = line.replace(f"{INSTALL_DIR}tls/", f"{tls_dir}/")
        lines.append(line)
    if os.geteuid() == 0:  # as root it drops to "mosquitto", who cannot read our files
        lines.insert(0, "user root")
    return lines


def _local_listener(line: str, port: int, tls_port: int | None) -> str:
    if line == PLAIN_LISTENER:
        return f"listener {port} 127.0.0.1"
    if line == TLS_LISTENER:
        return f"listener {tls_port} 127.0.0.1"
    raise ValueError(f"{SHIPPED_CONF} has a listener devservices does not know: {line!r}")


class MosquittoInstance:
    """A private Mosquitto broker on 127.0.0.1:``port`` with its files under ``workdir``.

    Without ``password_file`` it allows anonymous clients; with one it runs the shipped config
    (``config/mosquitto/mosquitto.conf``: no anonymous clients, client id = username, the per-lot
    ACL ``config/mosquitto/acl``) made local by :func:`shipped_config`, with its TLS listener on
    ``tls_port`` when ``tls_dir`` holds the broker's TLS files. ``extra_config`` is
    appended to the generated config (later lines win). It can be stopped and started again on
    the same port and persistence (the chaos and partition tests need that).
    """

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        extra_config: str = "",
        *,
        password_file: Path | None = None,
        tls_dir: Path | None = None,
    ) -> None:
        self.binary = find_binary("mosquitto", "mosquitto", ("/usr/sbin",))
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.password_file = password_file
        self.tls_dir = tls_dir
        self.tls_port = free_port() if tls_dir is not None else None
        self.conf = workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"
        self.conf.write_text("\n".join([*self._config_lines(), extra_config]) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def _config_lines(self) -> list[str]:
        if self.password_file is not None:
            return shipped_config(
                self.workdir,
                self.port,
                self.password_file,
                tls_dir=self.tls_dir,
                tls_port=self.tls_port,
            )
        lines = [
            "per_listener_settings false",
            f"listener {self.port} {self.host}",
            "allow_anonymous true",
        ]
        if os.geteuid() == 0:  # as root it drops to "mosquitto", who cannot read our files
            lines.insert(0, "user root")
        return [
            *lines,
            "persistence true",
            f"persistence_location {self.workdir}/",
            "autosave_interval 1",
            f"log_dest file {self.log}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "max_queued_messages 100000",
        ]

    @property
    def argv(self) -> list[str]:
        """The command that runs this broker (for a supervisor that starts it itself)."""
        return [self.binary, "-c", str(self.conf)]

    def start(self) -> MosquittoInstance:
        if self.running:
            return self
        # the broker logs to self.log; what it says on stderr (before it opens that) goes next
        # to it, not to a pipe nobody reads (64 KB, then the broker would block)
        with (self.workdir / "mosquitto.stderr").open("ab") as stderr:
            self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            wait_for_port(self.port, timeout=10)
            if self.tls_port is not None:
                wait_for_port(self.tls_port, timeout=10)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"mosquitto did not start: {self.log_text()}") from None
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None:
            stop_process(self.proc, sig)
            self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def __enter__(self) -> MosquittoInstance:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def write_password_file(path: Path, users: Mapping[str, str]) -> Path:
    """A Mosquitto password file holding exactly ``users`` (name → password), hashed by
    ``mosquitto_passwd -U`` in one run however many users there are."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as out:  # -U would hash an already hashed line again: rewrite all
        for user, password in users.items():
            out.write(f"{user}:{password}\n")
    if users:
        tool = find_binary("mosquitto_passwd", "mosquitto")
        subprocess.run([tool, "-U", str(path)], check=True, capture_output=True)
    return path


def secured_broker(
    workdir: Path,
    users: Mapping[str, str],
    *,
    port: int | None = None,
    extra_config: str = "",
    tls_dir: Path | None = None,
) -> MosquittoInstance:
    """A broker like production, not started: the shipped config and ACL, and ``workdir/passwd``
    holding ``users``; its TLS listener too when ``tls_dir`` holds the files ``cloud-api
    broker-tls`` makes. More users (``provision_lot`` appends a lot's entry to
    ``broker.password_file``) can be added before it starts."""
    passwd = write_password_file(workdir / "passwd", users)
    return MosquittoInstance(
        workdir / "broker", port, extra_config, password_file=passwd, tls_dir=tls_dir
    )
