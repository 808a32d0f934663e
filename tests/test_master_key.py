"""The master key and the database belong together: a server with a missing or wrong key
refuses to start in one line, key creation is atomic, and rotation refuses while servers run."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import httpx

from tests.helpers import zerotouch
from zerotouch.crypto.envelope import Keyring, create_keyring_file
from zerotouch.demo import server


def _key(env: dict[str, str], role: str = "owner") -> str:
    done = zerotouch(env, "keys", "create", "--role", role)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def _import_one(base: str, key: str, device_id: str = "dev-1") -> None:
    res = httpx.post(
        f"{base}/v1/manufacturing/devices",
        json={"devices": [{"deviceId": device_id, "deviceSecret": "A1" * 16}]},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert res.status_code == 200, res.text


def _one_line(done: object) -> str:
    stderr: str = getattr(done, "stderr")  # noqa: B009
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


def test_a_missing_master_key_is_refused_not_replaced(env: dict[str, str]) -> None:
    factory = _key(env, "manufacturer")
    with server(env) as (base, _):
        _import_one(base, factory)
    keyfile = Path(env["ZEROTOUCH_DATA_DIR"]) / "master.key"
    saved = keyfile.read_text()
    keyfile.unlink()
    done = zerotouch(env, "keys", "create", "--role", "owner")
    assert done.returncode == 2
    line = _one_line(done)
    assert "master.key does not exist" in line and "backup" in line
    assert not keyfile.exists()  # No new key was made in its place.
    keyfile.write_text(saved)
    assert zerotouch(env, "keys", "create", "--role", "owner").returncode == 0


def test_a_wrong_master_key_is_refused(env: dict[str, str]) -> None:
    factory = _key(env, "manufacturer")
    with server(env) as (base, _):
        _import_one(base, factory)
    wrong = {**env, "ZEROTOUCH_MASTER_KEY": Keyring.generate().format()}
    done = zerotouch(wrong, "serve", "--port", "0", "--ovms-port", "0", "--ovms-tls-port", "0")
    assert done.returncode == 2
    line = _one_line(done)
    assert "ZEROTOUCH_MASTER_KEY does not hold master key version 1" in line


def test_a_second_server_with_another_key_on_one_database_refuses(
    env: dict[str, str], tmp_path: Path
) -> None:
    _key(env)
    database = env.get("ZEROTOUCH_DATABASE_URL") or (
        f"sqlite:///{Path(env['ZEROTOUCH_DATA_DIR']) / 'zerotouch.db'}"
    )
    other = {**env, "ZEROTOUCH_DATA_DIR": str(tmp_path / "node-2")}
    other["ZEROTOUCH_DATABASE_URL"] = database
    done = zerotouch(other, "keys", "create", "--role", "owner")
    assert done.returncode == 2  # No key of its own: none is made for a database in use.
    assert "master.key does not exist" in _one_line(done)
    (tmp_path / "node-2").mkdir(exist_ok=True)
    (tmp_path / "node-2" / "master.key").write_text(Keyring.generate().format())
    done = zerotouch(other, "keys", "create", "--role", "owner")
    assert done.returncode == 2
    assert "does not hold master key version 1" in _one_line(done)
    # Given the first node's key, the second node joins.
    keyfile = Path(env["ZEROTOUCH_DATA_DIR"]) / "master.key"
    (tmp_path / "node-2" / "master.key").write_text(keyfile.read_text())
    assert zerotouch(other, "keys", "create", "--role", "owner").returncode == 0


def _create(path: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    keyring, made = create_keyring_file(Path(path))
    out.put((keyring.format(), made))


def test_processes_starting_together_make_one_key(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    path = str(tmp_path / "data" / "master.key")
    processes = [context.Process(target=_create, args=(path, out)) for _ in range(6)]
    for process in processes:
        process.start()
    results = [out.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(30)
    assert len({keyring for keyring, _ in results}) == 1
    assert sum(made for _, made in results) == 1
    assert Keyring.parse(Path(path).read_text()).format() == results[0][0]


def test_rotation_refuses_while_a_server_runs_and_works_after(env: dict[str, str]) -> None:
    factory = _key(env, "manufacturer")
    with server(env) as (base, _):
        _import_one(base, factory)
        done = zerotouch(env, "keys", "rotate-master")
        assert done.returncode == 2
        line = _one_line(done)
        assert "servers run on this database" in line and "stop them" in line
        label = httpx.get(
            f"{base}/v1/manufacturing/devices/dev-1/label",
            headers={"Authorization": f"Bearer {factory}"},
        )
        assert label.status_code == 200
    done = zerotouch(env, "keys", "rotate-master")
    assert done.returncode == 0, done.stderr
    assert "version 2" in done.stderr
    with server(env) as (base, _):
        after = httpx.get(
            f"{base}/v1/manufacturing/devices/dev-1/label",
            headers={"Authorization": f"Bearer {factory}"},
        )
        assert after.status_code == 200
        assert after.json()["ownerToken"] == label.json()["ownerToken"]
    # The retired key alone no longer opens the database: it is refused at start.
    old = {**env, "ZEROTOUCH_MASTER_KEY": "1:" + "A" * 43 + "="}
    assert zerotouch(old, "keys", "create", "--role", "owner").returncode == 2


def test_configuration_errors_are_one_line_naming_the_cause(
    env: dict[str, str], tmp_path: Path
) -> None:
    serve = ("serve", "--ovms-port", "0", "--ovms-tls-port", "0")
    cases = [
        ({"ZEROTOUCH_PORT": "abc"}, (), "ZEROTOUCH_PORT"),
        ({}, ("--log-level", "loud"), "'loud' is not one of"),
        ({}, ("--tls-cert", str(tmp_path / "no.pem"), "--tls-key", str(tmp_path / "no.key")),
         "--tls-cert: " + str(tmp_path / "no.pem")),
        ({"ZEROTOUCH_DATABASE_URL": "postgresql+psycopg://127.0.0.1:5432/zt_no_such_db"}, (),
         'ZEROTOUCH_DATABASE_URL: connection failed'),
        ({"ZEROTOUCH_MASTER_KEY": "not a key"}, (), "ZEROTOUCH_MASTER_KEY:"),
    ]  # fmt: skip
    for extra, flags, expected in cases:
        done = zerotouch({**env, **extra}, *serve, *flags)
        assert done.returncode == 2, (extra, flags, done.stderr)
        assert expected in done.stderr, (extra, flags, done.stderr)
        if "--log-level" not in flags:  # The command line's own usage box, for a flag.
            assert len([line for line in done.stderr.splitlines() if line.strip()]) == 1
