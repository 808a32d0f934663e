"""The database handle: engines for SQLite (WAL) and PostgreSQL, transactions, migrations."""

from __future__ import annotations

import contextlib
import fcntl
import threading
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import event, exc

from zerotouch.domain.errors import Unavailable, ZerotouchError
from zerotouch.store.fast import close_pending

# What services name a connection by (they never build statements themselves).
Connection = sa.Connection

MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_S = 30  # Writers queue on SQLite's single write lock; wait, do not fail.
MIGRATION_LOCK = 0x7A65726F  # Advisory lock key for migrations on PostgreSQL ("zero").
KEYRING_LOCK = 0x6B657973  # Advisory lock key of the keyring on PostgreSQL ("keys").
PG_CONNECT_TIMEOUT_S = 5  # Calls run on the event loop; a dead server must not hold it long.
SQLITE_CACHE_KIB = 32_768  # Per connection: the hot index pages of a large fleet stay in memory.
# Reads of pages beyond the cache come from the OS page cache without a read() call each.
SQLITE_MMAP_BYTES = 1 << 30
SQLITE_WAL_LIMIT_BYTES, SQLITE_WAL_AUTOCHECKPOINT = 64 << 20, 1000  # 1000 pages: the default.


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{(data_dir / 'zerotouch.db').resolve()}"


def _sqlite_setup(engine: sa.Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        # Take over transaction control from the driver so BEGIN can be IMMEDIATE for writers:
        # a deferred transaction that reads and then writes can fail at once under WAL instead
        # of waiting for the lock.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        cur.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
        # A log grown by a bulk load goes back to this size once a checkpoint has emptied it.
        cur.execute(f"PRAGMA journal_size_limit={SQLITE_WAL_LIMIT_BYTES}")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        # Straight to the driver: this runs for every transaction.
        conn.connection.driver_connection.execute(f"BEGIN {mode}")  # type: ignore[union-attr]


class _Held:
    """A thread's kept connection; when the thread ends this goes and the connection returns."""

    __slots__ = ("__weakref__", "conn")

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn


class KeyringBusy(Exception):
    """Another process holds the keyring lock the way that excludes this one."""


class KeyringLock:
    """Held, shared, by every process that may seal secrets with the master keyring (servers,
    the command line), and, exclusively, by a master key rotation: so a rotation runs only
    while no server does, and a server that starts during one waits for it to end.

    SQLite: an flock on a file beside the database; PostgreSQL: a session advisory lock on a
    connection of its own. Either goes with the process that holds it, however it ends.
    """

    def __init__(self, release: contextlib.ExitStack) -> None:
        self._release = release

    def release(self) -> None:
        self._release.close()


class Database:
    def __init__(self, url: str, *, pool_size: int = 20) -> None:
        self.url = sa.make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self._write_lock_path: Path | None = None
        self._thread_lock = threading.Lock()
        self._local = threading.local()
        self._finalizers: set[weakref.finalize[Any, Any]] = set()
        self._lock_file: IO[bytes] | None = None
        self._held: list[KeyringLock] = []
        if self.is_sqlite:
            if self.url.database and self.url.database != ":memory:":
                Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
                self._write_lock_path = Path(self.url.database + ".write-lock")
            self.engine = sa.create_engine(
                self.url,
                connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_S},
                pool_size=pool_size,
                max_overflow=pool_size,
                # Every use ends in COMMIT or ROLLBACK (see write/read), so the pool's own
                # rollback on return would be a wasted statement per transaction.
                pool_reset_on_return=None,
            )
            _sqlite_setup(self.engine)
        else:
            # No pre-ping: it would add a round trip to every transaction; a dropped
            # connection fails its statement, is discarded by the pool, and the caller sees
            # Unavailable.
            self.engine = sa.create_engine(
                self.url,
                pool_size=pool_size,
                max_overflow=pool_size,
                pool_reset_on_return=None,
                connect_args={"connect_timeout": PG_CONNECT_TIMEOUT_S},
            )

    @contextlib.contextmanager
    def write(self) -> Iterator[sa.Connection]:
        """One read-write transaction: committed when the block ends, rolled back on error."""
        with self._writer_turn(), self._connect("IMMEDIATE") as conn, _transaction(conn):
            yield conn

    @contextlib.contextmanager
    def write_batched(self) -> Iterator[sa.Connection]:
        """A write transaction whose statements, the COMMIT included, go out in a pipeline on
        PostgreSQL (see ``batch``): only FastStatement may run inside.

        When the block fails, the pipeline is closed first (the server's answers to what was
        still queued are read and dropped) and the transaction rolled back after it, so the
        block's own error is the one raised.
        """
        with self._writer_turn(), self._connect("IMMEDIATE") as conn, self._batched(conn):
            yield conn

    @contextlib.contextmanager
    def read_batched(self) -> Iterator[sa.Connection]:
        """A read transaction whose statements and COMMIT go out in one pipeline (see
        ``write_batched``): one round trip on PostgreSQL."""
        with self._connect("DEFERRED") as conn, self._batched(conn):
            yield conn

    @contextlib.contextmanager
    def _batched(self, conn: sa.Connection) -> Iterator[None]:
        transaction = conn.begin()
        try:
            with self.batch(conn):
                yield
                transaction.commit()
        except BaseException:
            close_pending(conn)
            if transaction.is_active:
                transaction.rollback()
            raise

    @contextlib.contextmanager
    def _writer_turn(self) -> Iterator[None]:
        """On SQLite, writers queue here instead of in SQLite's busy handler.

        SQLite allows one writer at a time, and its busy handler waits by sleeping 1, 2, 5, 10 ms
        and more between retries, which turns contention into latency spikes. A thread lock (for
        this process) and an flock on a file beside the database (for other processes, such as
        other server workers) let the next writer in the moment the previous one commits.
        """
        if self._write_lock_path is None:
            yield
            return
        with self._thread_lock:
            if self._lock_file is None:
                self._lock_file = open(self._write_lock_path, "a+b")  # noqa: SIM115
            fcntl.flock(self._lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._lock_file, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def read(self) -> Iterator[sa.Connection]:
        with self._connect("DEFERRED") as conn, _transaction(conn):
            yield conn

    @contextlib.contextmanager
    def _connect(self, sqlite_begin: str) -> Iterator[sa.Connection]:
        """This thread's connection, kept between transactions.

        A pool checkout and return per transaction cost about as much as a short claim's
        statements; each thread (the event loop, the pool's workers) keeps one connection
        instead. A connection that fails is dropped and the next transaction opens a new one.
        """
        held: _Held | None = getattr(self._local, "held", None)
        conn = held.conn if held is not None else None
        try:
            if conn is None or conn.closed or conn.invalidated:
                conn = self.engine.connect()
                held = _Held(conn)
                self._local.held = held
                # Back to the pool when the thread ends (its locals go) or on dispose.
                self._finalizers = {f for f in self._finalizers if f.alive}
                self._finalizers.add(weakref.finalize(held, conn.close))
            if self.is_sqlite:
                conn.execution_options(sqlite_begin=sqlite_begin)
            yield conn
        except exc.OperationalError as error:
            self._drop(conn)
            raise Unavailable("The database did not answer.") from error
        except exc.DBAPIError as error:
            if error.connection_invalidated:
                self._drop(conn)
            raise

    @contextlib.contextmanager
    def bulk_writes(self) -> Iterator[Callable[[], None]]:
        """A bulk load by this thread: on SQLite its connection stops checkpointing the log at
        each commit; the block calls what it is given (a passive checkpoint) every so many.
        Random keys (owner token hashes) dirty a page of their index each: fewer, larger
        checkpoints write each page once a cycle (a million rows: 21 s against 30 s)."""
        if not self.is_sqlite:
            yield lambda: None
            return

        def run(*pragmas: str) -> None:
            with self._connect("DEFERRED") as conn:
                driver = conn.connection.driver_connection
                for pragma in pragmas:
                    driver.execute(pragma).fetchall()  # type: ignore[union-attr]

        run("PRAGMA wal_autocheckpoint=0")
        checkpoint = "PRAGMA wal_checkpoint(PASSIVE)"
        try:
            yield lambda: run(checkpoint)
        finally:
            run(f"PRAGMA wal_autocheckpoint={SQLITE_WAL_AUTOCHECKPOINT}", checkpoint)

    @contextlib.contextmanager
    def batch(self, conn: sa.Connection) -> Iterator[None]:
        """Send the block's statements without waiting for each answer (PostgreSQL pipeline).

        Only ``FastStatement`` may run inside: a statement's rows arrive when they are read,
        and what failed is raised there or when the block ends. On SQLite, which runs in this
        process, there is nothing to wait for and this does nothing.
        """
        if self.is_sqlite:
            yield
            return
        driver = conn.connection.driver_connection
        dbapi_error = conn.dialect.loaded_dbapi.Error
        try:
            with driver.pipeline():  # type: ignore[union-attr]
                yield
        except dbapi_error as error:
            raise exc.DBAPIError.instance("(pipeline)", None, error, dbapi_error) from error

    def _drop(self, conn: sa.Connection | None) -> None:
        self._local.held = None
        if conn is not None:
            with contextlib.suppress(exc.SQLAlchemyError):
                conn.invalidate()

    def ping(self) -> None:
        with self.read() as conn:
            conn.execute(sa.text("SELECT 1"))

    def upgrade(self) -> None:
        """Apply every migration up to head; safe when several processes start at once.

        Migrations run as a writer (SQLite) or under an advisory lock (PostgreSQL), so a second
        process waits for the first and then finds the schema at head.
        """
        with self._writer_turn(), self._connect("IMMEDIATE") as conn, conn.begin():
            if not self.is_sqlite:
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            cfg = alembic_config(self.url.render_as_string(hide_password=False))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def keyring_lock(self, *, exclusive: bool, holder: str = "zerotouch") -> KeyringLock:
        """Take the keyring lock: shared (waits while a rotation runs) or exclusive (raises
        KeyringBusy at once when any process holds it; its message names them if it can)."""
        stack = contextlib.ExitStack()
        if self.is_sqlite:
            if self._write_lock_path is not None:
                path = self._write_lock_path.with_name(
                    self._write_lock_path.name.replace(".write-lock", ".keyring-lock")
                )
                handle = stack.enter_context(open(path, "a+b"))  # noqa: SIM115
                try:
                    flags = fcntl.LOCK_EX | fcntl.LOCK_NB if exclusive else fcntl.LOCK_SH
                    fcntl.flock(handle, flags)
                except BlockingIOError:
                    stack.close()
                    raise KeyringBusy("a zerotouch server runs on this database") from None
            return KeyringLock(stack)
        try:
            conn = stack.enter_context(self.engine.connect())
            conn.exec_driver_sql("SELECT set_config('application_name', %(name)s, false)",
                                 {"name": holder[:63]})  # fmt: skip
            if exclusive:
                got = conn.exec_driver_sql(
                    "SELECT pg_try_advisory_lock(%(key)s)", {"key": KEYRING_LOCK}
                ).scalar()
                if not got:
                    holders = self._keyring_holders(conn)
                    conn.rollback()
                    stack.close()
                    raise KeyringBusy(holders or "a zerotouch server runs on this database")
            else:
                conn.exec_driver_sql(
                    "SELECT pg_advisory_lock_shared(%(key)s)", {"key": KEYRING_LOCK}
                )
            conn.commit()  # The session's lock outlives the transaction that took it.
        except exc.OperationalError as error:
            stack.close()
            raise Unavailable("The database did not answer.") from error
        return KeyringLock(stack)

    @staticmethod
    def _keyring_holders(conn: sa.Connection) -> str:
        rows = conn.exec_driver_sql(
            "SELECT a.application_name, a.client_addr, a.backend_start FROM pg_locks l "
            "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
            "AND l.classid = 0 AND l.objid = %(key)s AND l.granted",
            {"key": KEYRING_LOCK},
        ).all()
        return "; ".join(
            f"{name or 'a process'} from {addr or 'this host'} since {start:%Y-%m-%d %H:%M:%S}"
            for name, addr, start in rows
        )

    def hold(self, lock: KeyringLock) -> None:
        """Keep ``lock`` until this database is disposed of."""
        self._held.append(lock)

    def dispose(self) -> None:
        held, self._held = self._held, []
        for lock in held:
            lock.release()
        finalizers, self._finalizers = self._finalizers, set()
        for finalizer in finalizers:
            with contextlib.suppress(exc.SQLAlchemyError):
                finalizer()
        self._local = threading.local()
        self.engine.dispose()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None


@contextlib.contextmanager
def _transaction(conn: sa.Connection) -> Iterator[None]:
    """Commit when the block ends; on error, drop unread statements first, then roll back.

    On SQLite a statement whose rows were never read is still running: it would keep its
    lock (a write's) or its snapshot (a read's) through the rollback, and the connection,
    kept for this thread's next transaction, would hold every other writer off or read the
    past.
    """
    transaction = conn.begin()
    try:
        yield
    except BaseException:
        close_pending(conn)
        if transaction.is_active:
            transaction.rollback()
        raise
    transaction.commit()


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def is_unique_violation(error: exc.IntegrityError) -> bool:
    text = str(error.orig).lower()
    return "unique" in text or "duplicate key" in text


@contextlib.contextmanager
def unique_violation_as(error: ZerotouchError) -> Iterator[None]:
    """Turn a unique-constraint violation inside the block into ``error``."""
    try:
        yield
    except exc.IntegrityError as raised:
        if is_unique_violation(raised):
            raise error from raised
        raise
