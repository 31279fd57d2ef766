"""The local stack's certificate authority and the server certificate its services present.

``stack up`` makes them once, into ``secrets/tls/`` of the state folder (files 0600): a CA
(``ca.pem``, the file every client trusts: ``ssl.ca.location``; ``ca-key.pem`` never leaves
the folder) and one server certificate for the names the services answer on (``server.pem``
the certificate chain, ``server-key.pem`` its PKCS#8 key, ``server-bundle.pem`` both in one
file, the form Kafka's PEM key store reads). Kafka's client listener, the registry's HTTPS
and PostgreSQL's TLS all present the same server certificate.

RSA 2048 and SHA-256: every client in the stack reads it (librdkafka/OpenSSL, Python's ssl
module under aiokafka and httpx, the JVM under Kafka and Apicurio, libpq). The CA lives ten
years, the server certificate two; ``ensure_tls`` makes a new server certificate when the
old one expires within 30 days or lacks a name now asked for, and keeps the CA, so clients'
``ca.pem`` stays valid.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from deploy.stack.layout import private_folder

DEFAULT_NAMES = ("localhost", "127.0.0.1", "::1")
CA_DAYS = 3650
SERVER_DAYS = 730
RENEW_BEFORE_DAYS = 30


@dataclass(frozen=True)
class TlsFiles:
    folder: Path

    @property
    def ca(self) -> Path:
        """The CA certificate: what clients trust (``ssl.ca.location``)."""
        return self.folder / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.folder / "ca-key.pem"

    @property
    def server_certificate(self) -> Path:
        """The server certificate followed by the CA's (the chain a server presents)."""
        return self.folder / "server.pem"

    @property
    def server_key(self) -> Path:
        """The server certificate's private key, PKCS#8 PEM, unencrypted (mode 0600)."""
        return self.folder / "server-key.pem"

    @property
    def server_bundle(self) -> Path:
        """Key and chain in one file: Kafka's ``ssl.keystore.type=PEM`` key store."""
        return self.folder / "server-bundle.pem"


def tls_files(secrets: Path) -> TlsFiles:
    return TlsFiles(secrets / "tls")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _write_private(path: Path, data: bytes) -> None:
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_bytes(data)


def _san(names: Iterable[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def _make_ca(files: TlsFiles) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    key = _key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tipsync local stack CA")])
    now = _now()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    _write_private(files.ca_key, _pem_key(key))
    _write_private(files.ca, _pem(certificate))
    return certificate, key


def _load_ca(files: TlsFiles) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    certificate = x509.load_pem_x509_certificate(files.ca.read_bytes())
    key = serialization.load_pem_private_key(files.ca_key.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return certificate, key


def _server_is_current(files: TlsFiles, names: tuple[str, ...]) -> bool:
    if not (files.server_certificate.is_file() and files.server_key.is_file()
            and files.server_bundle.is_file()):
        return False
    certificate = x509.load_pem_x509_certificates(files.server_certificate.read_bytes())[0]
    if certificate.not_valid_after_utc - _now() < dt.timedelta(days=RENEW_BEFORE_DAYS):
        return False
    present = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(_san(names)) <= set(present)


def ensure_tls(secrets: Path, names: Iterable[str] = ()) -> TlsFiles:
    """The CA and a server certificate valid for ``DEFAULT_NAMES`` plus ``names``, made when
    missing, expiring or lacking a name; the CA is kept once made."""
    files = tls_files(secrets)
    private_folder(secrets)
    private_folder(files.folder)
    wanted = tuple(dict.fromkeys((*DEFAULT_NAMES, *names)))
    if files.ca.is_file() and files.ca_key.is_file():
        ca_certificate, ca_key = _load_ca(files)
    else:
        ca_certificate, ca_key = _make_ca(files)
    if _server_is_current(files, wanted):
        return files
    key = _key()
    now = _now()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, wanted[0])]))
        .issuer_name(ca_certificate.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=SERVER_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_san(wanted), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    chain = _pem(certificate) + _pem(ca_certificate)
    _write_private(files.server_key, _pem_key(key))
    _write_private(files.server_certificate, chain)
    _write_private(files.server_bundle, _pem_key(key) + chain)
    return files
