"""Self-signed OPC UA application certificates (OPC 10000-6 6.2.2 form), made with ``cryptography``:
for the simulator's server and for a test client. A plant uses the certificates its PKI issues."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

from asyncua.crypto.cert_gen import dump_private_key_as_pem, generate_private_key, generate_self_signed_app_certificate
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

SERVER_URI = "urn:neurohub:mes:opcua-simulator"
CLIENT_URI = "urn:neurohub:mes:opcua-client"


def make_certificate(folder: Path, name: str, *, uri: str, server: bool, days: int = 365) -> tuple[Path, Path]:
    """Write ``NAME.der`` (certificate) and ``NAME.pem`` (RSA 2048 private key) into ``folder``;
    returns their paths. The subject alternative names carry ``uri`` (the application URI OPC UA
    checks), this host's name, ``localhost`` and 127.0.0.1."""
    folder.mkdir(parents=True, exist_ok=True)
    key = generate_private_key()
    usage = [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
    names = [
        x509.UniformResourceIdentifier(uri),
        x509.DNSName(socket.gethostname()),
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ]
    cert = generate_self_signed_app_certificate(key, name, {"O": "NeuroHub MES"}, names, extended=usage, days=days)
    cert_path, key_path = folder / f"{name}.der", folder / f"{name}.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    key_path.write_bytes(dump_private_key_as_pem(key))
    key_path.chmod(0o600)
    return cert_path, key_path
