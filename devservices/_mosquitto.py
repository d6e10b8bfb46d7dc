"""A private Mosquitto broker, anonymous or secured like production (the shipped ACL)."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path

from devservices._process import REPO_ROOT, find_binary, stop_process
from devservices._wait import free_port, wait_for_port

__all__ = ["SHIPPED_ACL", "MosquittoInstance", "secured_broker", "write_password_file"]

SHIPPED_ACL = REPO_ROOT / "config" / "mosquitto" / "acl"


class MosquittoInstance:
    """A private Mosquitto broker on 127.0.0.1:``port`` with its files under ``workdir``.

    Without ``password_file`` it allows anonymous clients; with one it refuses them and applies
    the shipped per-lot ACL (``config/mosquitto/acl``), as production does. ``extra_config`` is
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
    ) -> None:
        self.binary = find_binary("mosquitto", "mosquitto", ("/usr/sbin",))
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.password_file = password_file
        self.conf = workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"
        self.conf.write_text("\n".join([*self._config_lines(), extra_config]) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def _config_lines(self) -> list[str]:
        lines = [
            "per_listener_settings false",
            f"listener {self.port} {self.host}",
        ]
        if os.geteuid() == 0:  # as root it drops to "mosquitto", who cannot read our files
            lines.insert(0, "user root")
        if self.password_file is None:
            lines.append("allow_anonymous true")
        else:
            lines += [
                "allow_anonymous false",
                f"password_file {self.password_file}",
                f"acl_file {SHIPPED_ACL}",
            ]
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
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_for_port(self.port, timeout=10)
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
) -> MosquittoInstance:
    """A broker like production, not started: no anonymous clients, the shipped ACL, and
    ``workdir/passwd`` holding ``users``. More users (``provision_lot`` appends a lot's entry to
    ``broker.password_file``) can be added before it starts."""
    passwd = write_password_file(workdir / "passwd", users)
    return MosquittoInstance(workdir / "broker", port, extra_config, password_file=passwd)
