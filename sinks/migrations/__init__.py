"""Versioned SQL migrations of the reconciled store, applied in order by ``sinks.migrate``.

A file is named ``NNNN_what_it_does.sql``. Once a migration is committed it is released:
never edit it (the runner refuses to run when a recorded checksum no longer matches);
put every change in a new file with the next number.
"""
