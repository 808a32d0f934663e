"""The README's walkthrough works as written: its shell blocks, run in order by bash on a fresh
data directory (only the ports are changed, to free ones)."""

from __future__ import annotations

import re
import socket
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = (
    "## A first session",
    "## The factory",
    "## OVMS auto-provisioning",
    "## Provisioning over MQTT",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    found = []
    for title in SECTIONS:
        section = text[text.index(title) :]
        section = section[: section.index("\n## ", 1)]
        found += re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    # The first block is the demo, run by tests/test_agent_cli_tls.py.
    return [b for b in found if "zerotouch demo" not in b]


@pytest.mark.timeout(300)
def test_the_walkthrough_runs_as_written(env: dict[str, str], tmp_path: Path) -> None:
    http, ovms = _free_port(), _free_port()
    script = "\n".join(_blocks())
    script = script.replace("make install\n", "").replace("8000", str(http))
    script = script.replace("127.0.0.1:6867", f"127.0.0.1:{ovms}")
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    done = subprocess.run(
        ["bash", "-c", "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null' EXIT\n" + script],
        cwd=tmp_path,
        env={**env, "ZEROTOUCH_OVMS_PORT": str(ovms), "ZEROTOUCH_OVMS_TLS_PORT": "0"},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert "PROVISIONED" in lines
    # curl prints no newline of its own: the car's parameters close the output.
    assert done.stdout.endswith("NOPHONE\nmodpass1\nK\nIP\n127.0.0.1\ninternet\n")
    assert (tmp_path / "keystore" / "sensor-001" / "16842753" / "private.pem").exists()
