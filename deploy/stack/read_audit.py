"""The server side of the analysts' read audit on the local stack: pgaudit installed and
loaded, its object audit role, and a server log only the server's user can read.

What is recorded and why is in docs/ANALYSTS.md, *The read audit*. In short: pgaudit's
object audit logs every statement of an analyst that reads a table or view of the store
(who, when, which object, how many rows; never the statement's text), and the store's own
``reconciled.read_audit`` table records which golden persons a search or a person view
returned. The server writes its log as JSON lines (``jsonlog``) into ``log/`` inside the
data folder (mode 0700, the server's user), where ``tipsync audit`` reads it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from deploy.stack.layout import StackError
from schemas import config

PGAUDIT_PACKAGE = "postgresql-15-pgaudit"
# The role whose SELECT grants name the audited objects (pgaudit.role); it never logs in.
AUDITOR_ROLE = "tipsync_auditor"
# Inside the data folder, so the server's user alone can list and read it.
SERVER_LOG_FOLDER = "log"
SETTINGS_MARKER = "# tipsync read audit"

# pgaudit is loaded in every backend; object audit is switched on per analyst
# (`ALTER ROLE ... SET pgaudit.role`, done by `tipsync analyst add`), so the sink's
# steady reads of the same tables are not logged. Settings of pgaudit are superuser-only:
# an analyst cannot switch their own audit off.
SERVER_LOG_SETTINGS = f"""
{SETTINGS_MARKER}
shared_preload_libraries = 'pgaudit'
pgaudit.log = 'none'
pgaudit.log_catalog = off
pgaudit.log_client = off
pgaudit.log_parameter = off
# Never the statement's text: a WHERE clause or a search term may hold a name or a number.
pgaudit.log_statement = off
pgaudit.log_rows = on
# Only JSON lines, one copy of each record: the server's other messages go there too
# (the stack's logs/postgres.log keeps what the server says before the collector starts).
logging_collector = on
log_destination = 'jsonlog'
log_directory = '{SERVER_LOG_FOLDER}'
log_filename = 'postgresql-%Y-%m-%d.log'
log_file_mode = 0600
log_rotation_age = 1d
log_rotation_size = 0
log_truncate_on_rotation = off
# An erroring statement's text (a name in a WHERE clause) stays out of the log too.
log_min_error_statement = panic
log_timezone = 'UTC'
"""


def pgaudit_library(bin_folder: Path) -> Path:
    """Where Debian's package puts the library for the server of ``bin_folder``
    (``/usr/lib/postgresql/15/bin`` -> ``/usr/lib/postgresql/15/lib/pgaudit.so``)."""
    return bin_folder.parent / "lib" / "pgaudit.so"


def ensure_pgaudit(bin_folder: Path) -> None:
    """Install ``postgresql-15-pgaudit`` with apt-get when its library is missing and we are
    root; otherwise say what to install. The read audit needs it: no stack without it."""
    library = pgaudit_library(bin_folder)
    if library.is_file():
        return
    apt_get = shutil.which("apt-get")
    if os.geteuid() != 0 or apt_get is None:
        raise StackError(
            f"pgaudit, which records every read an analyst makes, is not installed ({library}"
            f" is missing). Install it as root (Debian: `apt-get install {PGAUDIT_PACKAGE}`)"
            " and run `tipsync stack up` again."
        )
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in ([apt_get, "update", "-qq"],
                    [apt_get, "install", "-y", "-qq", "--no-install-recommends",
                     PGAUDIT_PACKAGE]):
        result = subprocess.run(command, capture_output=True, text=True, env=environment)
        if result.returncode != 0:
            raise StackError(
                f"installing {PGAUDIT_PACKAGE} failed (`{' '.join(command[1:])}` exit"
                f" {result.returncode}): {result.stderr.strip()[-800:]}. Install it by hand"
                " and run `tipsync stack up` again."
            )
    if not library.is_file():
        raise StackError(
            f"{PGAUDIT_PACKAGE} is installed but {library} is still missing: the package is"
            f" for another PostgreSQL than {bin_folder}; point {config.POSTGRES_BIN} at"
            " PostgreSQL 15's bin folder"
        )


def add_settings(postgresql_conf: Path) -> bool:
    """Append the read audit's settings to a cluster's ``postgresql.conf`` unless they are
    there (a cluster made before the audit existed gets them on its next start); True when
    appended, so the caller knows a running server needs a restart."""
    text = postgresql_conf.read_text()
    if SETTINGS_MARKER in text:
        return False
    with open(postgresql_conf, "a") as conf:
        conf.write(SERVER_LOG_SETTINGS)
    return True


CREATE_AUDITOR_ROLE = f"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{AUDITOR_ROLE}') THEN
        CREATE ROLE {AUDITOR_ROLE} NOLOGIN;
    END IF;
END
$$
"""
