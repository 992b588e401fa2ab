"""Throwaway TLS material for the local OpenID provider: an EC test CA and a server certificate."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SYSTEM_CA_FILE = Path("/etc/ssl/certs/ca-certificates.crt")


@dataclass(frozen=True)
class TLSFiles:
    """Paths of the generated PEM files."""

    ca_cert: Path  # the test CA alone
    server_cert: Path
    server_key: Path
    bundle: Path  # system CAs + the test CA, for REQUESTS_CA_BUNDLE


def system_ca_file() -> Path:
    """The machine's CA file, else certifi's."""
    if SYSTEM_CA_FILE.is_file():
        return SYSTEM_CA_FILE
    import certifi  # requests depends on it

    return Path(certifi.where())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_test_tls(directory: Path) -> TLSFiles:
    """Write a new CA, a server cert for 127.0.0.1 and localhost, and a CA bundle in directory."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("labeler test CA"))
        .issuer_name(_name("labeler test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca_cert.subject)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )

    pem = serialization.Encoding.PEM
    ca_pem = ca_cert.public_bytes(pem)
    files = TLSFiles(
        ca_cert=directory / "test-ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server-key.pem",
        bundle=directory / "ca-bundle.pem",
    )
    files.ca_cert.write_bytes(ca_pem)
    files.server_cert.write_bytes(server_cert.public_bytes(pem))
    files.server_key.write_bytes(
        server_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    os.chmod(files.server_key, 0o600)
    system_pem = system_ca_file().read_bytes()
    files.bundle.write_bytes(system_pem.rstrip(b"\n") + b"\n" + ca_pem)
    return files
