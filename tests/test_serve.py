"""`zerotouch serve` as a user runs it: one process, or several sharing the port."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import wait_healthy


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            if f"\nPPid:\t{pid}\n" in status:
                found.add(int(entry.name))
    return found


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_answers_and_stops_cleanly(env: dict[str, str], workers: int) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "zerotouch",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
            "--ovms-port",
            "0",
            "--ovms-tls-port",
            "0",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_healthy(port, proc)
        children = _children(proc.pid)
        if workers > 1:
            assert len({c for c in children if Path(f"/proc/{c}").exists()}) >= workers
        # Separate connections: each lands on some worker, and every one answers.
        for _ in range(20):
            with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
                assert client.get("/healthz").json() == {"status": "ok"}
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        # Workers (and multiprocessing's resource tracker) follow the parent out.
        deadline = time.monotonic() + 10
        while [c for c in children if Path(f"/proc/{c}").exists()]:
            assert time.monotonic() < deadline, "a worker outlived the server"
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()


def test_a_second_server_gets_address_in_use(env: dict[str, str], tmp_path: Path) -> None:
    """Only the workers of one `serve` share a port: anyone else is refused, in one line."""
    port, ovms_port = _free_port(), _free_port()
    args = ["serve", "--port", str(port), "--ovms-port", str(ovms_port), "--ovms-tls-port", "0"]
    first = subprocess.Popen(
        [sys.executable, "-m", "zerotouch", *args, "--workers", "2", "--log-level", "warning"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_healthy(port, first)
        other = {**env, "ZEROTOUCH_DATA_DIR": str(tmp_path / "other")}
        other.pop("ZEROTOUCH_DATABASE_URL", None)
        for workers, extra in (("2", []), ("1", []), ("2", ["--port", str(_free_port())])):
            done = subprocess.run(
                [sys.executable, "-m", "zerotouch", *args, *extra, "--workers", workers],
                env=other,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 2, done.stderr
            assert "address in use" in done.stderr
            assert len([line for line in done.stderr.splitlines() if line.strip()]) == 1
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(30)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_server_closes_every_front_end_and_exits_0(
    env: dict[str, str], stop: signal.Signals
) -> None:
    """HTTP stops first (its requests finish), then OVMS and the housekeeping, then the process
    ends normally: the signal is not raised again behind the serving root's back."""
    port, ovms_port = _free_port(), _free_port()
    command = [sys.executable, "-m", "zerotouch", "serve", "--port", str(port), "--ovms-port"]
    proc = subprocess.Popen(
        [*command, str(ovms_port), "--ovms-tls-port", "0", "--log-level", "info"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_healthy(port, proc)
        with socket.create_connection(("127.0.0.1", ovms_port), timeout=5):
            pass  # The OVMS listener is up.
        proc.send_signal(stop)
        _, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 0, stderr
        assert "Traceback" not in stderr, stderr
        assert "zerotouch stopped: HTTP, OVMS and housekeeping closed" in stderr, stderr
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", ovms_port), timeout=1).close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
