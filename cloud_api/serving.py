"""Worker processes for ``cloud-api serve``: one ``SO_REUSEPORT`` socket each, on Linux.

uvicorn's own ``--workers`` shares one listening socket between the processes, and whichever
process calls ``accept`` first takes the connection: with keep-alive clients the split is often
lopsided (64 connections seen split 11/53, once 64/0), one worker saturates while the other idles,
and tail latency doubles. Here the parent binds one socket per worker in a ``SO_REUSEPORT`` group
before any worker starts, so the kernel spreads connections evenly by their address hash from the
first connection on, and hands each socket to its worker. A worker that dies is replaced; SIGTERM
or SIGINT stops them all (uvicorn's graceful shutdown in each). Each worker process builds its
own app by calling the factory it is given (pickled to the process: a module-level function, or a
``functools.partial`` of one with picklable arguments such as the settings).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import uvicorn

__all__ = ["serve"]

log = logging.getLogger(__name__)
BACKLOG = 2048  # uvicorn's default

AppFactory = Callable[[], Any]
"""Builds one process's ASGI app."""


def serve(app: AppFactory, host: str, port: int, workers: int, **config: Any) -> None:
    """Run the app ``app()`` builds on ``host:port`` in ``workers`` processes until signalled."""
    if workers <= 1:
        uvicorn.run(app, factory=True, host=host, port=port, **config)
        return
    if sys.platform.startswith("linux"):
        sockets = [_reuseport_socket(host, port) for _ in range(workers)]
    else:  # no even SO_REUSEPORT split elsewhere: the workers share one socket
        sockets = [_reuseport_socket(host, port)] * workers
    ctx = multiprocessing.get_context("spawn")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    def start(sock: socket.socket) -> multiprocessing.process.BaseProcess:
        proc = ctx.Process(
            target=_worker, args=(app, sock, config, os.getpid()), name="cloud-api-worker"
        )
        proc.start()
        return proc

    procs = [start(sock) for sock in sockets]
    try:
        while not stop.wait(0.5):
            for i, proc in enumerate(procs):
                if not proc.is_alive():
                    log.error("worker %s exited with %s; starting another", proc.pid, proc.exitcode)
                    procs[i] = start(sockets[i])
    finally:
        for proc in procs:
            proc.terminate()  # SIGTERM: uvicorn finishes the requests in flight
        for proc in procs:
            proc.join(timeout=15)
            if proc.is_alive():
                proc.kill()
        for sock in set(sockets):
            sock.close()


def _reuseport_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    return sock


def _worker(app: AppFactory, sock: socket.socket, config: dict[str, Any], parent: int) -> None:
    # ``parent`` comes from the parent itself: a parent killed while this worker was still
    # importing has already handed it to init, and its getppid() would be init's pid
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    server = uvicorn.Server(uvicorn.Config(app, factory=True, **config))
    server.run(sockets=[sock])


def _exit_with_parent(parent: int) -> None:
    """A parent killed outright (SIGKILL, OOM) must not leave workers serving on its port."""
    while os.getppid() == parent:
        time.sleep(1)
    os.kill(os.getpid(), signal.SIGTERM)
