"""Tests for latchkey.crypto.x509: the CA and the leaves it mints."""

from __future__ import annotations

import ipaddress
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from latchkey.crypto.x509 import (
    CertificateAuthority,
    load_or_create_ca,
)

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)  # same instant as conftest.CA_NOW
AWS_HOST = "kms.us-east-1.amazonaws.com"


# --- the CA ---------------------------------------------------------------------------


@pytest.mark.usefixtures("umask_zero")
def test_ca_created_with_key_0600_and_cert_0644(ca_paths: tuple[Path, Path]) -> None:
    cert_path, key_path = ca_paths
    load_or_create_ca(cert_path, key_path, now=NOW)
    assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(cert_path).st_mode) == 0o644
    assert key_path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")


def test_ca_certificate_profile(ca: CertificateAuthority) -> None:
    cert = ca.certificate
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "latchkey CA"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "latchkey"
    assert cert.issuer == cert.subject
    assert isinstance(ca.private_key, ec.EllipticCurvePrivateKey)
    assert isinstance(ca.private_key.curve, ec.SECP256R1)
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical
    assert bc.value.ca
    assert bc.value.path_length == 0
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical
    assert ku.value.key_cert_sign
    assert ku.value.crl_sign
    assert not ku.value.digital_signature
    cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.NameConstraints)
    assert cert.not_valid_after_utc == NOW + timedelta(days=3650)
    cert.verify_directly_issued_by(cert)


def test_reloading_gives_the_same_ca(ca_paths: tuple[Path, Path], ca: CertificateAuthority) -> None:
    again = load_or_create_ca(*ca_paths, now=NOW + timedelta(days=30))
    assert again.cert_pem == ca.cert_pem
    assert again.certificate == ca.certificate
    assert again.private_key.private_numbers() == ca.private_key.private_numbers()


def test_ca_repr_hides_the_private_key(ca: CertificateAuthority) -> None:
    text = repr(ca)
    assert "private_key" not in text
    assert str(ca.private_key.private_numbers().private_value) not in text


def test_key_without_certificate_is_not_overwritten(ca_paths: tuple[Path, Path]) -> None:
    cert_path, key_path = ca_paths
    load_or_create_ca(cert_path, key_path, now=NOW)
    key_before = key_path.read_bytes()
    cert_path.unlink()
    with pytest.raises(FileExistsError, match=r"ca\.key"):
        load_or_create_ca(cert_path, key_path, now=NOW)
    assert key_path.read_bytes() == key_before


def test_certificate_without_key_is_regenerated(ca_paths: tuple[Path, Path]) -> None:
    cert_path, key_path = ca_paths
    first = load_or_create_ca(cert_path, key_path, now=NOW)
    key_path.unlink()
    second = load_or_create_ca(cert_path, key_path, now=NOW)
    assert second.cert_pem != first.cert_pem
    assert cert_path.read_bytes() == second.cert_pem


def test_mismatched_key_is_refused(tmp_path: Path, ca_paths: tuple[Path, Path]) -> None:
    load_or_create_ca(*ca_paths, now=NOW)
    other_cert, other_key = tmp_path / "o.pem", tmp_path / "o.key"
    load_or_create_ca(other_cert, other_key, now=NOW)
    with pytest.raises(ValueError, match="does not match"):
        load_or_create_ca(ca_paths[0], other_key, now=NOW)


def test_world_readable_ca_key_is_refused(ca_paths: tuple[Path, Path]) -> None:
    load_or_create_ca(*ca_paths, now=NOW)
    ca_paths[1].chmod(0o644)
    with pytest.raises(PermissionError):
        load_or_create_ca(*ca_paths, now=NOW)


def test_naive_now_is_refused(ca_paths: tuple[Path, Path]) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        load_or_create_ca(*ca_paths, now=datetime(2025, 1, 1))


# --- leaves ---------------------------------------------------------------------------


def test_leaf_profile(ca: CertificateAuthority) -> None:
    cert_pem, key_pem = ca.mint_leaf([AWS_HOST, "127.0.0.1", "::1"], now=NOW)
    assert key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    leaf = x509.load_pem_x509_certificate(cert_pem)
    leaf.verify_directly_issued_by(ca.certificate)
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == AWS_HOST
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [AWS_HOST]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    assert leaf.not_valid_before_utc == NOW - timedelta(minutes=5)
    assert leaf.not_valid_after_utc == NOW + timedelta(days=1)
    bc = leaf.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical
    assert not bc.value.ca
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ca_ski = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ca_ski.digest
    leaf.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)


def test_leaf_serials_are_random(ca: CertificateAuthority) -> None:
    serials = {
        x509.load_pem_x509_certificate(ca.mint_leaf(["a.example"], now=NOW)[0]).serial_number
        for _ in range(5)
    }
    assert len(serials) == 5


def test_leaf_never_outlives_the_ca(tmp_path: Path) -> None:
    short = load_or_create_ca(tmp_path / "c", tmp_path / "k", now=NOW, lifetime=timedelta(hours=1))
    leaf = x509.load_pem_x509_certificate(short.mint_leaf(["a.example"], now=NOW)[0])
    assert leaf.not_valid_after_utc == short.certificate.not_valid_after_utc


def test_long_first_hostname_has_no_cn(ca: CertificateAuthority) -> None:
    host = ("a" * 60) + ".example.com"
    leaf = x509.load_pem_x509_certificate(ca.mint_leaf([host], now=NOW)[0])
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME) == []
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [host]


@pytest.mark.parametrize("hostnames", [[], "kms.example", ["bücher.example"]])
def test_bad_hostnames_are_refused(ca: CertificateAuthority, hostnames: list[str]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - cryptography's message for IDNA varies
        ca.mint_leaf(hostnames, now=NOW)
