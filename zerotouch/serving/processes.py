"""Several serving processes on one port, each with its own SO_REUSEPORT socket.

uvicorn's own workers share one listening socket, and whichever process's loop wakes first
accepts a whole burst of connections: under 50 keep-alive clients one worker was seen serving
all of them while the other sat idle. With a socket per process the kernel spreads connections
across the workers by hash.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import multiprocessing
import os
import signal
import socket
import tempfile
import time
from collections.abc import Iterable
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType
from typing import Any

RESTART_DELAY_S = 1.0  # A worker that dies is started again after this pause.


class PortInUse(Exception):
    """A port this server would listen on is taken; the message names it."""


def claim_ports(host: str, ports: Iterable[int]) -> contextlib.ExitStack:
    """Make sure no one else listens on ``ports``, and keep it so while the stack is open.

    The workers of one ``serve`` share their ports through SO_REUSEPORT, which would let any
    other process of the same user join them and take a share of the traffic. So before they
    start, each port is probed with a plain socket (it fails if anyone listens there), and a
    lock file per port is held for as long as the server runs, so that another ``zerotouch
    serve`` starting at the same moment finds it taken.
    """
    stack = contextlib.ExitStack()
    folder = Path(tempfile.gettempdir()) / f"zerotouch-ports-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    try:
        for port in ports:
            lock = stack.enter_context(open(folder / f"{host}_{port}.lock", "a+b"))  # noqa: SIM115
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise PortInUse(
                    f"{host}:{port}: address in use by another zerotouch server"
                ) from None
            _probe(host, port)
    except BaseException:
        stack.close()
        raise
    return stack


def _probe(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUse(f"{host}:{port}: address in use") from None
            raise PortInUse(f"{host}:{port}: {exc.strerror}") from None


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def _worker(host: str, port: int, options: dict[str, Any]) -> None:
    from zerotouch import logs, serving
    from zerotouch.settings import Settings

    settings = Settings()
    logs.configure(settings.log_level, settings.log_format)

    serving.run(settings, options=options, sockets=[_listen(host, port)])


def serve_workers(host: str, port: int, workers: int, options: dict[str, Any]) -> None:
    """Run ``workers`` server processes until SIGINT or SIGTERM, restarting any that die."""
    context = multiprocessing.get_context("spawn")
    stopping = False

    def start() -> BaseProcess:
        process = context.Process(target=_worker, args=(host, port, options), daemon=False)
        process.start()
        return process

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for process in processes:
            if process.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()

    processes = [start() for _ in range(workers)]
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while not stopping:
        time.sleep(0.2)
        for index, process in enumerate(processes):
            if not process.is_alive() and not stopping:
                time.sleep(RESTART_DELAY_S)
                processes[index] = start()
    for process in processes:
        process.join(30)
        if process.is_alive():
            process.kill()
