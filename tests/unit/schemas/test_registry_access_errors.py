"""The registry client's messages when the registry refuses who we are or we refuse its
certificate (the real refusals: tests/integration/test_registry_security.py)."""

from __future__ import annotations

import ssl

import httpx

from schemas.registry import ACCESS_HINTS, _untrusted_certificate


def chained(inner: BaseException) -> httpx.ConnectError:
    """An httpx error with ``inner`` at the end of its cause chain, as httpx raises it
    (httpx's error from httpcore's, from the ``ssl`` or socket error)."""
    outer, middle = httpx.ConnectError("connect failed"), OSError("connect failed")
    outer.__cause__, middle.__cause__ = middle, inner
    return outer


def test_an_untrusted_certificate_is_told_apart_from_a_registry_that_is_down() -> None:
    assert _untrusted_certificate(chained(ssl.SSLCertVerificationError("verify failed")))
    assert not _untrusted_certificate(chained(ConnectionRefusedError(111, "refused")))
    assert not _untrusted_certificate(chained(ssl.SSLError("wrong version number")))


def test_a_cyclic_cause_chain_ends() -> None:
    first, second = OSError("a"), OSError("b")
    first.__cause__, second.__cause__ = second, first
    assert not _untrusted_certificate(first)


def test_refusals_say_which_setting_to_change() -> None:
    assert "schema.registry.basic.auth.user.info" in ACCESS_HINTS[401]
    assert "admin's client properties file" in ACCESS_HINTS[403]
