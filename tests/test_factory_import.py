"""`zerotouch import` as a factory runs it: into the database and to a server, the records of
The Things Stack and ThingPark, bad rows reported by number, re-runs, and a run killed with
kill -9 and run again."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.helpers import zerotouch
from zerotouch import demo
from zerotouch.protocols import tr005
from zerotouch.store.db import Database
from zerotouch.store.schema import devices

APP_KEY = "2B7E151628AED2A6ABF7158809CF4F3C"
STDIN_JSONL = [sys.executable, "-m", "zerotouch", "import", "-", "--format", "jsonl"]


def _database(env: dict[str, str]) -> Database:
    url = env.get("ZEROTOUCH_DATABASE_URL") or (
        f"sqlite:///{Path(env['ZEROTOUCH_DATA_DIR']) / 'zerotouch.db'}"
    )
    return Database(url)


def _stored(env: dict[str, str]) -> list[Any]:
    db = _database(env)
    try:
        with db.read() as conn:
            return list(conn.execute(sa.select(devices).order_by(devices.c.id)))
    finally:
        db.dispose()


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_thingpark_export_with_a_bad_row_then_a_re_run(env: dict[str, str], tmp_path: Path) -> None:
    source = tmp_path / "thingpark.csv"
    source.write_text(
        "DevEUI;AppEUI;AppKey;Name;DeviceProfileId\n"
        f"0004A30B001C0530;70B3D57ED0000000;{APP_KEY};meter 1;LORA/GenericA.1.0.2a_ETSI\n"
        "0004A30B001C05ZZ;70B3D57ED0000000;00;meter 2;LORA/GenericA.1.0.2a_ETSI\n"
        f"0004A30B001C0532;70B3D57ED0000000;{APP_KEY};meter 3;LORA/GenericA.1.0.2a_ETSI\n"
    )
    done = zerotouch(env, "import", str(source), "--account", "factory", "--json")
    assert done.returncode == 1, done.stderr  # Some rows were rejected.
    assert json.loads(done.stdout) == {"imported": 2, "unchanged": 0, "updated": 0, "rejected": 1}
    errors = _csv(tmp_path / "thingpark.csv.errors.csv")
    assert [(e["row"], e["code"]) for e in errors] == [("2", "validation_failed")]
    assert "devEui" in errors[0]["message"] and "appKey" in errors[0]["message"]
    labels = _csv(tmp_path / "thingpark.csv.labels.csv")
    assert [row["deviceId"] for row in labels] == ["0004A30B001C0530", "0004A30B001C0532"]
    stored = {row.device_id: row for row in _stored(env)}
    assert stored["0004A30B001C0530"].join_eui == "70B3D57ED0000000"
    assert APP_KEY not in str(stored["0004A30B001C0530"].app_key_sealed)
    # The same file again: nothing changes, the labels as printed come back.
    again = zerotouch(env, "import", str(source), "--account", "factory", "--json")
    assert json.loads(again.stdout) == {"imported": 0, "unchanged": 2, "updated": 0, "rejected": 1}
    assert _csv(tmp_path / "thingpark.csv.labels.csv") == labels
    # A changed row is refused without --update and changed with it.
    source.write_text(f"DevEUI;AppEUI;AppKey\n0004A30B001C0530;70B3D57ED0000001;{APP_KEY}\n")
    refused = zerotouch(env, "import", str(source), "--account", "factory")
    assert refused.returncode == 1 and "1 rejected" in refused.stdout
    assert _csv(tmp_path / "thingpark.csv.errors.csv")[0]["code"] == "record_changed"
    updated = zerotouch(env, "import", str(source), "--account", "factory", "--update", "--json")
    assert json.loads(updated.stdout)["updated"] == 1, updated.stderr
    stored = {row.device_id: row for row in _stored(env)}
    assert stored["0004A30B001C0530"].join_eui == "70B3D57ED0000001"


def test_the_things_stack_columns_headerless_files_and_qr_payloads(
    env: dict[str, str], tmp_path: Path
) -> None:
    tts = tmp_path / "tts.csv"
    tts.write_text(
        "id;dev_eui;join_eui;app_key;name;frequency_plan_id;lorawan_version\n"
        f"sensor-1;70B3D57ED005B001;70B3D57ED0000000;{APP_KEY};Sensor;EU_863_870;MAC_V1_0_3\n"
    )
    assert zerotouch(env, "import", str(tts), "--account", "factory").returncode == 0
    bare = tmp_path / "bare.csv"
    bare.write_text("plain-1,SN-1,alpha,beta\n")  # Tags split by ';' in a ',' file: one here.
    done = zerotouch(
        env, "import", str(bare), "--account", "factory", "--columns", "deviceId,serial,tags"
    )
    assert done.returncode == 1  # Four cells, three columns.
    bare.write_text("plain-1,SN-1,alpha;beta\n")
    done = zerotouch(
        env, "import", str(bare), "--account", "factory", "--columns", "deviceId,serial,tags"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # A label printed leniently (lowercase, no checksum) is read; ours is emitted strictly.
    printed = "lw:d0:70b3d57ed0000000:70b3d57ed005b002:00010001:SQ2"
    labelled = tmp_path / "labelled.jsonl"
    labelled.write_text(json.dumps({"qr": printed, "appKey": APP_KEY}) + "\n")
    assert zerotouch(env, "import", str(labelled), "--account", "factory").returncode == 0
    stored = {row.device_id: row for row in _stored(env)}
    assert stored["sensor-1"].dev_eui == "70B3D57ED005B001"
    assert (stored["plain-1"].serial, stored["plain-1"].factory_tags) == ("SN-1", ["alpha", "beta"])
    assert (stored["70B3D57ED005B002"].profile_id, stored["70B3D57ED005B002"].serial) == (
        "00010001",
        "Q2",
    )
    label = _csv(tmp_path / "labelled.jsonl.labels.csv")[0]["qr"]
    parsed = tr005.parse(label)
    assert parsed.deviations == () and isinstance(parsed.payload, tr005.Tr005Payload)
    assert parsed.payload.serial_number == "Q2" and parsed.payload.owner_token


def test_a_header_we_cannot_use_is_one_line(env: dict[str, str], tmp_path: Path) -> None:
    source = tmp_path / "odd.csv"
    source.write_text("deviceId,colour\nd1,red\n")
    done = zerotouch(env, "import", str(source), "--account", "factory")
    assert done.returncode == 2
    assert done.stderr.strip() == "zerotouch: header: unknown column 'colour'"


def _processes_of(env: dict[str, str]) -> list[int]:
    """The processes running with this test's data directory in their environment."""
    marker = f"ZEROTOUCH_DATA_DIR={env['ZEROTOUCH_DATA_DIR']}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _rows(path: Path, count: int) -> None:
    with path.open("w") as f:
        f.write("devEui,joinEui,appKey,serial\n")
        for i in range(count):
            f.write(f"{i:016X},70B3D57ED0000000,{i:032X},S{i}\n")


@pytest.mark.timeout(240)
def test_an_import_killed_mid_way_resumes_with_every_row_once(
    env: dict[str, str], tmp_path: Path
) -> None:
    total = 60_000
    source = tmp_path / "line.csv"
    _rows(source, total)
    command = [sys.executable, "-m", "zerotouch", "import", str(source), "--account", "factory"]
    assert zerotouch(env, "db", "upgrade").returncode == 0
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    killed = subprocess.Popen(command, env=env, **quiet)  # type: ignore[call-overload]
    db = _database(env)
    try:
        count = 0
        deadline = time.monotonic() + 120
        while count == 0 and killed.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
            with db.read() as conn:
                count = conn.execute(sa.select(sa.func.count()).select_from(devices)).scalar_one()
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait(10)
        with db.read() as conn:
            count = conn.execute(sa.select(sa.func.count()).select_from(devices)).scalar_one()
    finally:
        db.dispose()
    assert 0 < count < total, "the import was not stopped mid-way"
    # Its worker processes end with it.
    deadline = time.monotonic() + 10
    while _processes_of(env) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_of(env) == []
    assert count % 5_000 == 0  # Whole batches only.
    done = zerotouch(env, "import", str(source), "--account", "factory", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary == {"imported": total - count, "unchanged": count, "updated": 0, "rejected": 0}
    stored = _stored(env)
    assert len(stored) == total and len({row.device_id for row in stored}) == total
    labels = _csv(tmp_path / "line.csv.labels.csv")
    assert sorted(int(r["deviceId"], 16) for r in labels) == list(range(total))


@pytest.mark.timeout(120)
def test_to_a_server_from_stdin(env: dict[str, str], tmp_path: Path) -> None:
    keys = demo.create_keys(env)
    lines = [
        json.dumps({"deviceId": "srv-1", "appKey": "generate"}),
        json.dumps({"deviceId": "srv-2", "tkmInfo": "SE:050:A1B2"}),
        "{not json",
    ]
    with demo.server(env) as (base, _):
        served = {**env, "ZEROTOUCH_API_KEY": keys.manufacturer}
        done = subprocess.run(
            [*STDIN_JSONL, "--server", base, "--json"],
            input="\n".join(lines) + "\n",
            env=served,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 1, done.stderr
        assert json.loads(done.stdout) == {
            "imported": 2,
            "unchanged": 0,
            "updated": 0,
            "rejected": 1,
        }
        labels = _csv(tmp_path / "stdin.labels.csv")
        generated = labels[0]["appKey"]
        assert len(generated) == 32 and labels[1]["appKey"] == ""
        errors = _csv(tmp_path / "stdin.errors.csv")
        assert errors[0]["row"] == "3" and "not JSON" in errors[0]["message"]
        # The generated AppKey is shown that once; a re-run shows the label without it.
        again = httpx.post(
            f"{base}/v1/manufacturing/devices",
            content=lines[0] + "\n",
            headers={
                "Authorization": f"Bearer {keys.manufacturer}",
                "Content-Type": "application/x-ndjson",
                "Accept": "application/x-ndjson",
            },
        )
        entries = [json.loads(line) for line in again.text.splitlines()]
        assert "appKey" not in entries[0] and entries[-1]["unchanged"] == 1
        refused = subprocess.run(
            [*STDIN_JSONL, "--server", base, "--api-key", keys.owner + "x"],
            input=lines[0],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert refused.returncode == 2 and refused.stderr.startswith("zerotouch: 401")
    stored = {row.device_id: row for row in _stored(env)}
    assert stored["srv-2"].tkm_info == "SE:050:A1B2" and stored["srv-2"].app_key_sealed is None
    assert generated not in str(stored["srv-1"].app_key_sealed)
