"""The store's roles the sink knows by name, and connecting to the store as one of them.

The reconciled store is written by ``tipsync_sink``, a login with rights on the rows of the
tables it writes and nothing else (the ``sink_role`` migration grants them); the schema
belongs to its owner (``tipsync`` on the local stack), who alone applies migrations. The
database URL names the store (server, database, TLS settings, password file); each command
connects to it as the role its job needs.
"""

from __future__ import annotations

from psycopg.conninfo import conninfo_to_dict, make_conninfo

SINK_ROLE = "tipsync_sink"


def conninfo_as(database_url: str, role: str) -> str:
    """``database_url`` with ``role`` as its user: the same server, database, TLS settings
    and password file (which must hold a line for ``role``)."""
    params = conninfo_to_dict(database_url)
    params["user"] = role
    return make_conninfo("", **params)
