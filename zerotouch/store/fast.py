"""Hot-path statements run straight on the driver's cursor: the one place that compiles them.

SQLAlchemy compiles each statement here once per dialect (``FastStatement.plan``), and its own
type processors convert parameters and results, so the SQL and the values are exactly what
``Connection.execute`` would produce. What is skipped is the per-call machinery around them,
which on a claim cost twice what SQLite spent running the statements (measured with py-spy
under bench/claims.py). Used only where a request runs a handful of fixed statements many times
a second, by the set statements of a group (store/sets.py) and by bulk inserts (store/bulk.py).
docs/hot-path.md tells the whole story.
"""

from __future__ import annotations

import weakref
from collections import namedtuple
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.compiler import SQLCompiler

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True, slots=True)
class Plan:
    sql: str
    names: tuple[str, ...]
    positional: bool
    bind: tuple[Processor, ...]
    # Values of the parameters the statement carries itself (literals such as status == 'X').
    defaults: dict[str, Any]
    # Result columns that need converting: (position, processor); most need none.
    result: tuple[tuple[int, Callable[[Any], Any]], ...]
    row: Any


_ALL: list[FastStatement] = []


def prepare(dialect: sa.Dialect) -> None:
    """Compile every hot-path statement for ``dialect`` now (a server does this as it starts),
    so that no request waits for a compilation."""
    for statement in list(_ALL):
        statement.plan(dialect)


class FastStatement:
    def __init__(self, statement: sa.ClauseElement) -> None:
        self.statement = statement
        self._plans: dict[str, Plan] = {}
        _ALL.append(self)

    def plan(self, dialect: sa.Dialect) -> Plan:
        """The statement compiled for ``dialect`` (once), with its converters."""
        plan = self._plans.get(dialect.name)
        if plan is None:
            compiled = self.statement.compile(dialect=dialect)
            assert isinstance(compiled, SQLCompiler)
            if "POSTCOMPILE" in compiled.string:
                raise ValueError("expanding IN lists cannot run here: list sa.literal() values")
            if compiled.positional:
                names = tuple(compiled.positiontup or ())
            else:
                names = tuple(compiled.binds)
            bind = tuple(
                compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
                for name in names
            )
            columns = list(getattr(self.statement, "selected_columns", [])) or list(
                getattr(self.statement, "_returning", ())
            )
            processors = (
                c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns
            )
            result = tuple((i, p) for i, p in enumerate(processors) if p is not None)
            row = namedtuple("Row", [c.key for c in columns]) if columns else None
            defaults = {
                name: b.effective_value for name, b in compiled.binds.items() if not b.required
            }
            plan = Plan(compiled.string, names, compiled.positional, bind, defaults, result, row)
            self._plans[dialect.name] = plan
        return plan

    def _args(self, plan: Plan, params: Mapping[str, Any]) -> Any:
        raw = [params[n] if n in params else plan.defaults[n] for n in plan.names]
        values = [
            p(v) if p is not None and v is not None else v
            for v, p in zip(raw, plan.bind, strict=True)
        ]
        return tuple(values) if plan.positional else dict(zip(plan.names, values, strict=True))

    def send(self, conn: sa.Connection, params: Mapping[str, Any]) -> Pending:
        """Execute with ``params``; the rows are read when ``Pending.rows()`` is called.

        Inside ``Database.batch`` on PostgreSQL the statement only joins the pipeline: it goes
        out with the next ones, and nothing waits for the server until rows are read.
        """
        plan = self.plan(conn.dialect)
        dbapi_error = conn.dialect.loaded_dbapi.Error
        cursor = conn.connection.cursor()
        try:
            cursor.execute(plan.sql, self._args(plan, params))
        except dbapi_error as error:
            cursor.close()
            raise translated(plan.sql, error, dbapi_error) from error
        except BaseException:
            cursor.close()
            raise
        if plan.row is None:
            cursor.close()
            return Pending(plan, None, dbapi_error)
        pending = Pending(plan, cursor, dbapi_error)
        # Rows not read when the transaction fails are dropped then (see close_pending): on
        # SQLite an unfinished statement keeps its lock, or its snapshot, past the rollback.
        conn.info.setdefault(_PENDING, weakref.WeakSet()).add(pending)
        return pending

    def run(self, conn: sa.Connection, params: Mapping[str, Any]) -> list[Any]:
        """Execute with ``params``; returns the result rows (attribute access by column key)."""
        return self.send(conn, params).rows()


class Pending:
    """A sent statement whose rows have not been read yet."""

    __slots__ = ("__weakref__", "_cursor", "_error", "_plan")

    def __init__(self, plan: Plan, cursor: Any, dbapi_error: type[Exception]) -> None:
        self._plan, self._cursor, self._error = plan, cursor, dbapi_error

    def close(self) -> None:
        """Drop the rows unread."""
        if self._cursor is not None:
            self._cursor.close()
            self._cursor = None

    def rows(self) -> list[Any]:
        plan, cursor = self._plan, self._cursor
        if cursor is None:
            return []
        try:
            raw = cursor.fetchall()
        except self._error as error:
            raise translated(plan.sql, error, self._error) from error
        finally:
            cursor.close()
            self._cursor = None
        make = plan.row._make
        if not plan.result:
            return [make(r) for r in raw]
        rows = []
        for r in raw:
            values = list(r)
            for i, p in plan.result:
                values[i] = p(values[i])
            rows.append(make(values))
        return rows


_PENDING = "zerotouch.pending"


def close_pending(conn: sa.Connection) -> None:
    """Close the cursors of statements whose rows were never read (a failed transaction's)."""
    for pending in list(conn.info.pop(_PENDING, ())):
        pending.close()


def translated(sql: str, error: Exception, dbapi_error: type[Exception]) -> Exception:
    """The driver's error raised as SQLAlchemy would, so store/ translates it like any other."""
    return sa.exc.DBAPIError.instance(sql, None, error, dbapi_error)
