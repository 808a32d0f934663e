"""SQLAlchemy 2 tables and queries, Alembic migrations; SQLite and PostgreSQL.

Database exceptions are translated into domain error kinds here and nowhere else.
"""
