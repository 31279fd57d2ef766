"""The local stack's CA and server certificate: made once, private, verifiable by a client."""

from __future__ import annotations

import ssl
import stat
from pathlib import Path

from cryptography import x509

from deploy.stack.tls import ensure_tls


def test_files_are_private_and_the_chain_verifies(tmp_path: Path) -> None:
    files = ensure_tls(tmp_path / "secrets", ["kafka-1.example"])
    for path in (files.ca, files.ca_key, files.server_certificate, files.server_key,
                 files.server_bundle):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(files.folder.stat().st_mode) == 0o700
    # Python's ssl module (aiokafka, httpx) accepts the chain against the CA.
    context = ssl.create_default_context(cafile=str(files.ca))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(files.server_certificate, files.server_key)
    certificate = x509.load_pem_x509_certificates(files.server_certificate.read_bytes())[0]
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "kafka-1.example" in names.get_values_for_type(x509.DNSName)
    assert context.cert_store_stats()["x509_ca"] == 1


def test_second_call_keeps_everything_and_a_new_name_keeps_the_ca(tmp_path: Path) -> None:
    first = ensure_tls(tmp_path)
    ca, server = first.ca.read_bytes(), first.server_certificate.read_bytes()
    again = ensure_tls(tmp_path)
    assert again.ca.read_bytes() == ca and again.server_certificate.read_bytes() == server
    renamed = ensure_tls(tmp_path, ["registry.example"])
    assert renamed.ca.read_bytes() == ca
    assert renamed.server_certificate.read_bytes() != server
