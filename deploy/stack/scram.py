"""PostgreSQL's SCRAM-SHA-256 verifiers, made here so that a role's password never reaches
the server (the stack's service roles, analysts, compose's init script)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

SCRAM_ITERATIONS = 4096


def scram_verifier(password: str, salt: bytes | None = None,
                   iterations: int = SCRAM_ITERATIONS) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for ``password`` (as psql's
    ``\\password`` sends it): the server never receives the password itself, so no server
    log (an error's statement, ``log_statement``) can show it."""
    salt = os.urandom(16) if salt is None else salt
    salted = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode("ascii")

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"
