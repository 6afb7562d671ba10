"""The CA's name constraints (a stolen key mints nothing clients accept elsewhere), importing an
operator's CA, and single-flight leaf minting."""

from __future__ import annotations

import ssl
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from test_crypto_tls import _handshake

from latchkey.crypto.tls import NameNotPermitted
from latchkey.crypto.x509 import (
    LOOPBACK_PERMITTED,
    CertificateAuthority,
    LeafCache,
    client_ssl_context,
    import_ca,
    load_or_create_ca,
    server_ssl_context,
)

PERMITTED = ("amazonaws.com", *LOOPBACK_PERMITTED)


@pytest.fixture
def constrained(tmp_path: Path) -> tuple[CertificateAuthority, ssl.SSLContext]:
    ca = load_or_create_ca(
        tmp_path / "ca.pem", tmp_path / "ca.key", now=datetime.now(UTC), permitted=PERMITTED
    )
    return ca, client_ssl_context([tmp_path / "ca.pem"], use_system_store=False)


def test_the_constraints_are_critical_and_listed(
    constrained: tuple[CertificateAuthority, ssl.SSLContext],
) -> None:
    ca, _ = constrained
    ext = ca.certificate.extensions.get_extension_for_class(x509.NameConstraints)
    assert ext.critical
    assert ca.permitted == ("amazonaws.com", "localhost", "127.0.0.0/8", "::1/128")


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("kms.us-east-1.amazonaws.com", True),
        ("amazonaws.com", True),
        ("AMAZONAWS.COM.", True),
        ("notamazonaws.com", False),
        ("amazonaws.com.evil.test", False),
        ("localhost", True),
        ("127.0.0.9", True),
        ("::1", True),
        ("10.0.0.1", False),
        ("example.com", False),
    ],
)
def test_permits(
    constrained: tuple[CertificateAuthority, ssl.SSLContext], host: str, ok: bool
) -> None:
    assert constrained[0].permits(host) is ok


def test_clients_accept_leaves_inside_the_constraints(
    constrained: tuple[CertificateAuthority, ssl.SSLContext],
) -> None:
    ca, client = constrained
    for host in ("kms.us-east-1.amazonaws.com", "localhost", "127.0.0.1"):
        cert, key = ca.mint_leaf([host], now=datetime.now(UTC))
        _alpn, outcome = _handshake(server_ssl_context(cert, key), client, host)
        assert outcome == {"ok": True}


def test_a_stolen_key_mints_nothing_clients_accept_elsewhere(
    constrained: tuple[CertificateAuthority, ssl.SSLContext],
) -> None:
    """Whoever holds the CA key can sign any name, but OpenSSL (like every TLS client) checks
    the CA's name constraints and refuses the chain."""
    ca, client = constrained
    cert, key = ca.mint_leaf(["www.bank.example"], now=datetime.now(UTC))
    with pytest.raises(ssl.SSLCertVerificationError, match=r"(?i)name constraint|permitted"):
        _handshake(server_ssl_context(cert, key), client, "www.bank.example")


def test_the_leaf_cache_refuses_hosts_outside(
    constrained: tuple[CertificateAuthority, ssl.SSLContext],
) -> None:
    cache = LeafCache(constrained[0], now=lambda: datetime.now(UTC))
    with pytest.raises(NameNotPermitted, match=r"do not cover www\.example\.com"):
        cache.context_for("www.example.com")
    assert cache.mints == 0


def test_concurrent_first_requests_for_one_host_mint_once(
    constrained: tuple[CertificateAuthority, ssl.SSLContext],
) -> None:
    cache = LeafCache(constrained[0], now=lambda: datetime.now(UTC))
    start = threading.Barrier(8)
    got: list[ssl.SSLContext] = []

    def first_request() -> None:
        start.wait()
        got.append(cache.context_for("kms.us-east-1.amazonaws.com"))

    threads = [threading.Thread(target=first_request) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(got) == 8
    assert len({id(c) for c in got}) == 1
    assert cache.mints == 1


@pytest.mark.parametrize("bad", ["*.amazonaws.com", "", "a/b", "exämple.com"])
def test_bad_permitted_entries(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="not a DNS domain"):
        load_or_create_ca(
            tmp_path / "c.pem", tmp_path / "c.key", now=datetime.now(UTC), permitted=[bad]
        )


# -- importing an operator's CA ---------------------------------------------------------------


def _operator_ca(
    *, ca: bool = True, not_after: datetime | None = None, rsa_key: bool = True
) -> tuple[bytes, bytes]:
    now = datetime.now(UTC)
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey = (
        rsa.generate_private_key(65537, 2048)
        if rsa_key
        else ec.generate_private_key(ec.SECP256R1())
    )
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Acme Internal CA")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(not_after or now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def test_an_imported_rsa_ca_mints_leaves_clients_accept(tmp_path: Path) -> None:
    cert_pem, key_pem = _operator_ca()
    paths = tmp_path / "ca.pem", tmp_path / "ca-key.pem"
    ca = import_ca(cert_pem, key_pem, *paths, now=datetime.now(UTC))
    assert ca.permitted is None
    assert paths[1].stat().st_mode & 0o777 == 0o600
    loaded = load_or_create_ca(*paths, now=datetime.now(UTC))
    assert loaded.fingerprint == ca.fingerprint
    cert, key = loaded.mint_leaf(["kms.us-east-1.amazonaws.com"], now=datetime.now(UTC))
    client = client_ssl_context([paths[0]], use_system_store=False)
    _alpn, outcome = _handshake(
        server_ssl_context(cert, key), client, "kms.us-east-1.amazonaws.com"
    )
    assert outcome == {"ok": True}


def test_import_refusals(tmp_path: Path) -> None:
    paths = tmp_path / "ca.pem", tmp_path / "ca-key.pem"
    now = datetime.now(UTC)
    leaf_cert, leaf_key = _operator_ca(ca=False, rsa_key=False)
    with pytest.raises(ValueError, match="not a CA certificate"):
        import_ca(leaf_cert, leaf_key, *paths, now=now)
    cert_a, _ = _operator_ca(rsa_key=False)
    _, key_b = _operator_ca(rsa_key=False)
    with pytest.raises(ValueError, match="does not match"):
        import_ca(cert_a, key_b, *paths, now=now)
    expired = _operator_ca(rsa_key=False, not_after=now - timedelta(minutes=1))
    with pytest.raises(ValueError, match="not valid now"):
        import_ca(*expired, *paths, now=now)
    with pytest.raises(ValueError, match="not a PEM certificate"):
        import_ca(b"nope", key_b, *paths, now=now)
    assert not paths[0].exists()
    assert not paths[1].exists()
