"""Throwaway databases on the same PostgreSQL server, for tests and benchmarks.

The store's schema has fixed names (``reconciled.*``), so isolation comes from a whole
database: ``CREATE DATABASE`` needs only the CREATEDB right the ``tipsync`` role has.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from uuid import uuid4

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo


@contextmanager
def scratch_database(database_url: str, purpose: str) -> Iterator[str]:
    """A new empty database named ``tipsync_<purpose>_<random>``; yields its conninfo and
    drops it (even with connections still open) on exit."""
    name = f"tipsync_{purpose}_{uuid4().hex[:12]}"
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_conninfo(database_url, dbname=name)
    finally:
        drop = sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name))
        with psycopg.connect(database_url, autocommit=True) as admin:
            try:
                # Plain DROP stops an autovacuum worker by itself; FORCE may not (it needs
                # the right to signal other roles' processes), but ends our own sessions.
                admin.execute(drop)
            except psycopg.errors.ObjectInUse:
                admin.execute(drop + sql.SQL(" WITH (FORCE)"))
