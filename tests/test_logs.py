"""Logs: one format with UTC timestamps (JSON with a setting), a start line that says where
everything is, and a traceback written once."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys

import pytest

from tests.conftest import Api
from tests.helpers import free_port, wait_healthy
from zerotouch.services import devices


def test_an_unexpected_error_is_one_500_and_one_traceback(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(devices, "get_device", broken)
    with caplog.at_level(logging.ERROR):
        res = api.call("GET", "/v1/claimed-devices/dev-1")
    assert res.status_code == 500 and res.json()["code"] == "internal_error"
    assert "disk on fire" not in res.text
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1


def test_serve_logs_json_with_a_start_line(env: dict[str, str]) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "zerotouch", "serve", "--port", str(port), "--ovms-port", "0",
         "--ovms-tls-port", "0"],
        env={**env, "ZEROTOUCH_LOG_FORMAT": "json"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        wait_healthy(port, proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    entries = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    assert all(e["at"].endswith("Z") and e["level"] and e["logger"] for e in entries)
    messages = [e["message"] for e in entries]
    start = next(m for m in messages if "API on" in m)
    assert f"http://127.0.0.1:{port}" in start and "data in" in start and "database" in start
    assert any("new master key" in m and "back it up" in m for m in messages)
