"""A small client of the Confluent schema-registry API (as Apicurio Registry 3 serves it).

It caches what never changes (schema text by id, the id of a schema under a subject), retries
with exponential backoff when the registry does not answer or answers 502/503/504, and then
raises RegistryUnavailableError saying which URL failed and what to check. It never registers
on its own: only ``register`` (called by ``tipsync schemas register``) adds a version.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from schemas import config
from schemas.client_config import RegistryConnection
from schemas.errors import (
    RegistryError,
    RegistryUnavailableError,
    SchemaIncompatibleError,
)

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
# Answers that are the registry's state, not the request's: retried, then the registry counts as
# unavailable (callers wait for it). 500 is Apicurio's answer while its database is away
# ("PSQLException: terminating connection"; tests/integration/test_stream_registry_outage.py).
RETRIED_STATUSES = frozenset({500, 502, 503, 504})
ACCESS_HINTS = {
    401: "; give a registry user and secret as schema.registry.basic.auth.user.info in the"
         " client properties file",
    403: "; this registry user may only read: registering and changing schemas take the"
         " admin's client properties file",
}
# Confluent error codes for "subject not found", "version not found", "schema not found".


@dataclass(frozen=True)
class RegisteredSchema:
    subject: str
    version: int
    schema_id: int
    text: str


@dataclass(frozen=True)
class CompatibilityResult:
    compatible: bool
    reasons: list[str]


class SchemaRegistry:
    """Client of one registry. ``url`` is the Confluent-compatible API base, e.g.
    ``https://127.0.0.1:18081/apis/ccompat/v7`` (``Settings.registry_url``), or a
    ``RegistryConnection`` with credentials and a CA (``Settings.client.registry()``).

    ``attempts`` and ``backoff_seconds`` bound the wait when the registry is down:
    the delays double from ``backoff_seconds`` (0.25 s, 0.5 s, 1 s, 2 s: about 4 s in all).
    """

    def __init__(
        self,
        url: str | RegistryConnection,
        *,
        timeout_seconds: float = 5.0,
        attempts: int = 5,
        backoff_seconds: float = 0.25,
    ) -> None:
        connection = url if isinstance(url, RegistryConnection) else RegistryConnection(url)
        self.url = connection.url.rstrip("/")
        self.attempts = max(1, attempts)
        self.backoff_seconds = backoff_seconds
        self._client = httpx.Client(
            base_url=self.url, timeout=timeout_seconds, headers={"Accept": CONTENT_TYPE},
            auth=connection.auth, verify=connection.verify,
        )
        self._text_by_id: dict[int, str] = {}
        self._id_by_subject_text: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    # -- plumbing -------------------------------------------------------------------------

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> SchemaRegistry:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        url: str | None = None,
        content_type: str = CONTENT_TYPE,
    ) -> httpx.Response:
        target = url or path
        last_problem = ""
        for attempt in range(self.attempts):
            if attempt:
                time.sleep(self.backoff_seconds * 2 ** (attempt - 1))
            try:
                response = self._client.request(
                    method,
                    target,
                    content=None if body is None else json.dumps(body),
                    headers={"Content-Type": content_type, "Accept": content_type}
                    if body is not None
                    else None,
                )
            except httpx.TransportError as error:
                if _untrusted_certificate(error):
                    raise RegistryError(
                        f"schema registry at {self.url} presented a certificate this client"
                        " does not trust; give the registry's CA as"
                        " schema.registry.ssl.ca.location in the client properties file (the"
                        " local stack's is secrets/tls/ca.pem)"
                    ) from None
                last_problem = f"{type(error).__name__}: {error}"
                continue
            if response.status_code in RETRIED_STATUSES:
                last_problem = f"HTTP {response.status_code}"
                continue
            return response
        raise RegistryUnavailableError(
            f"schema registry at {self.url} did not answer {method} {path} after "
            f"{self.attempts} attempts ({last_problem}); check that it runs "
            f"(`tipsync stack status`) and that {config.REGISTRY_URL} points at it"
        )

    def _failure(self, response: httpx.Response, what: str) -> RegistryError:
        return RegistryError(
            f"schema registry at {self.url} refused to {what}: HTTP {response.status_code} "
            f"{_message_of(response)}{ACCESS_HINTS.get(response.status_code, '')}"
        )

    # -- reading --------------------------------------------------------------------------

    def schema_text_by_id(self, schema_id: int) -> str | None:
        """The schema text registered under ``schema_id``, or None when the id is unknown."""
        cached = self._text_by_id.get(schema_id)
        if cached is not None:
            return cached
        response = self._request("GET", f"/schemas/ids/{schema_id}")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._failure(response, f"return schema id {schema_id}")
        text = response.json()["schema"]
        with self._lock:
            self._text_by_id[schema_id] = text
        return text

    def lookup(self, subject: str, text: str) -> int | None:
        """The id under which ``text`` is registered in ``subject``, or None if it is not."""
        key = (subject, text)
        cached = self._id_by_subject_text.get(key)
        if cached is not None:
            return cached
        response = self._request("POST", f"/subjects/{_segment(subject)}", {"schema": text})
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._failure(response, f"look up a schema in subject {subject}")
        schema_id = int(response.json()["id"])
        with self._lock:
            self._id_by_subject_text[key] = schema_id
            self._text_by_id.setdefault(schema_id, text)
        return schema_id

    def latest(self, subject: str) -> RegisteredSchema | None:
        """The latest version of ``subject``, or None when the subject does not exist."""
        response = self._request("GET", f"/subjects/{_segment(subject)}/versions/latest")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._failure(response, f"return the latest version of subject {subject}")
        answer = response.json()
        return RegisteredSchema(
            subject=subject,
            version=int(answer["version"]),
            schema_id=int(answer["id"]),
            text=answer["schema"],
        )

    def subjects(self) -> list[str]:
        response = self._request("GET", "/subjects")
        if response.status_code != 200:
            raise self._failure(response, "list subjects")
        return list(response.json())

    def compatibility(self, subject: str) -> str | None:
        """The subject's compatibility level, or None when it only inherits the global one."""
        response = self._request("GET", f"/config/{_segment(subject)}")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._failure(response, f"return the compatibility of subject {subject}")
        answer = response.json()
        return answer.get("compatibilityLevel") or answer.get("compatibility")

    def check_compatibility(self, subject: str, text: str) -> CompatibilityResult:
        """Would ``text`` be accepted as the next version of ``subject`` under its rule?

        Checks against every version the subject's level covers (all of them for the
        *_TRANSITIVE levels). When the Confluent API gives no reason for a refusal, the
        reason is asked from Apicurio's own API with a dry run (nothing is registered).
        """
        response = self._request(
            "POST",
            f"/compatibility/subjects/{_segment(subject)}/versions?verbose=true",
            {"schema": text},
        )
        if response.status_code != 200:
            raise self._failure(response, f"check compatibility against subject {subject}")
        answer = response.json()
        compatible = bool(answer.get("is_compatible"))
        reasons = [str(message) for message in answer.get("messages") or []]
        if not compatible and not reasons:
            reasons = self._apicurio_dry_run_reasons(subject, text)
        return CompatibilityResult(compatible=compatible, reasons=reasons)

    def _apicurio_dry_run_reasons(self, subject: str, text: str) -> list[str]:
        marker = "/apis/ccompat/"
        if marker not in self.url:
            return ["the registry gave no reason"]
        native = self.url.split(marker)[0] + "/apis/registry/v3"
        url = f"{native}/groups/default/artifacts/{_segment(subject)}/versions?dryRun=true"
        body = {"content": {"content": text, "contentType": "application/json"}}
        response = self._request("POST", url, body, url=url, content_type="application/json")
        if response.status_code < 400:
            return ["the registry gave no reason"]
        try:
            causes = response.json().get("causes") or []
        except ValueError:
            causes = []
        reasons = [f"{cause.get('description')} at {cause.get('context')}" for cause in causes]
        return reasons or [_message_of(response)]

    # -- writing (governance only: `tipsync schemas register`, tests) ---------------------

    def set_compatibility(self, subject: str, level: str) -> None:
        response = self._request("PUT", f"/config/{_segment(subject)}", {"compatibility": level})
        if response.status_code != 200:
            raise self._failure(response, f"set compatibility {level} on subject {subject}")

    def register(self, subject: str, text: str) -> int:
        """Register ``text`` under ``subject`` (idempotent: an existing version keeps its id).

        Raises SchemaIncompatibleError with the registry's reasons when the subject's rule
        refuses it.
        """
        response = self._request(
            "POST", f"/subjects/{_segment(subject)}/versions", {"schema": text}
        )
        if response.status_code == 409:
            raise SchemaIncompatibleError(subject, [_message_of(response)])
        if response.status_code != 200:
            raise self._failure(response, f"register a schema in subject {subject}")
        schema_id = int(response.json()["id"])
        with self._lock:
            self._id_by_subject_text[(subject, text)] = schema_id
            self._text_by_id.setdefault(schema_id, text)
        return schema_id

    def delete_subject(self, subject: str) -> None:
        """Delete a subject for good (soft, then hard delete). Meant for tests' own subjects."""
        for suffix in ("", "?permanent=true"):
            response = self._request("DELETE", f"/subjects/{_segment(subject)}{suffix}")
            if response.status_code not in (200, 404):
                raise self._failure(response, f"delete subject {subject}")
        with self._lock:
            for key in [key for key in self._id_by_subject_text if key[0] == subject]:
                del self._id_by_subject_text[key]


def _untrusted_certificate(error: BaseException) -> bool:
    """True when TLS failed because the registry's certificate is not trusted (the
    ``ssl`` error sits at the end of the exception's cause chain)."""
    cause: BaseException | None = error
    for _ in range(10):  # a chain is short; the bound only guards against a cycle
        if cause is None:
            return False
        if isinstance(cause, ssl.SSLCertVerificationError):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def _segment(subject: str) -> str:
    return quote(subject, safe="")


def _message_of(response: httpx.Response) -> str:
    try:
        answer = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(answer, dict):
        message = str(answer.get("message") or answer.get("detail") or answer)
        # Apicurio prefixes the Java exception class; the rest is the useful sentence.
        return message.removeprefix("io.apicurio.registry.rules.violation.RuleViolationException: ")
    return str(answer)[:300]
