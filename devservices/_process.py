"""The service processes: where their binaries are installed and how one is stopped."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


class MissingBinary(RuntimeError):
    """A service binary is not installed; the message names the apt package."""


def find_binary(name: str, package: str, extra_dirs: tuple[str, ...] = ()) -> str:
    """``name`` on PATH or in one of ``extra_dirs`` (globs, newest first)."""
    found = shutil.which(name)
    if found:
        return found
    for d in extra_dirs:
        for candidate in sorted(Path("/").glob(d.lstrip("/")), reverse=True):
            path = candidate / name
            if path.is_file() and os.access(path, os.X_OK):
                return str(path)
    raise MissingBinary(f"{name} is not installed (apt-get install {package})")


def stop_process(
    proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 10
) -> None:
    """Send ``sig`` and wait up to ``timeout`` seconds, then kill; close its stderr pipe."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stderr:
        proc.stderr.close()
