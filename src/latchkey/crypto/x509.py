"""The latchkey CA and the short-lived leaf certificates it mints.

The CA is ECDSA P-256, self-signed, ``basicConstraints CA:TRUE, pathlen:0``
(critical), ``keyUsage keyCertSign, cRLSign`` (critical), valid from an hour
before creation (clock skew) for ``lifetime``, with critical X.509 Name Constraints that permit
only the given DNS domains and IP networks (the Server Workloads' domains and the loopback names
the local cloud and idp use): a stolen CA key cannot mint a certificate clients accept for any
other domain.  An imported CA (EC or RSA) is used as it is.  Leaves are ECDSA P-256
server certificates (EKU serverAuth) with DNS or IP SANs, valid from
``now - backdate`` to ``now + lifetime`` (never beyond the CA's own expiry).
The TLS context helpers live in :mod:`latchkey.crypto.tls` and are re-exported
here, as is the per-host :class:`~latchkey.crypto.tls.LeafCache`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from latchkey.crypto.tls import LeafCache, client_ssl_context, server_ssl_context
from latchkey.secretfile import read_secret_file, write_public_file, write_secret_file

__all__ = [
    "LOOPBACK_PERMITTED",
    "CertificateAuthority",
    "LeafCache",
    "client_ssl_context",
    "import_ca",
    "load_or_create_ca",
    "server_ssl_context",
]

# What the local cloud's and idp's own certificates name (cloud/bootstrap.py LOCAL_NAMES).
LOOPBACK_PERMITTED = ("localhost", "127.0.0.0/8", "::1/128")

CaKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

_CA_NAME = x509.Name(
    [
        x509.NameAttribute(NameOID.COMMON_NAME, "latchkey CA"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "latchkey"),
    ]
)
_MAX_CN = 64
_LEAF_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)
_CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=False,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")


def _private_pem(key: CaKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)  # raises ValueError for non-A-label names


def permitted_subtree(item: str) -> x509.GeneralName:
    """``example.com`` (the domain and every name below it) or an IP network in CIDR form."""
    try:
        return x509.IPAddress(ipaddress.ip_network(item, strict=True))
    except ValueError:
        pass
    name = item.strip().rstrip(".").lower()
    if not name or "*" in name or "/" in name or not name.isascii():
        raise ValueError(f"not a DNS domain (A-labels, no wildcard) or an IP network: {item!r}")
    return x509.DNSName(name)


def _subtree_text(name: x509.GeneralName) -> str:
    return str(name.value) if isinstance(name, x509.IPAddress) else str(name.value).lower()


@dataclass(frozen=True, eq=False)
class CertificateAuthority:
    """A loaded CA: its PEM, private key (never in repr) and parsed certificate."""

    cert_pem: bytes
    private_key: CaKey = field(repr=False)
    certificate: x509.Certificate = field(repr=False)

    @property
    def permitted(self) -> tuple[str, ...] | None:
        """The permitted subtrees of the CA's name constraints; ``None``: unconstrained."""
        try:
            ext = self.certificate.extensions.get_extension_for_class(x509.NameConstraints)
        except x509.ExtensionNotFound:
            return None
        return tuple(_subtree_text(n) for n in ext.value.permitted_subtrees or ())

    def permits(self, host: str) -> bool:
        """Whether a leaf for ``host`` would satisfy the CA's name constraints."""
        permitted = self.permitted
        if permitted is None:
            return True
        host = host.rstrip(".").lower()
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        for item in permitted:
            if "/" in item:
                if address is not None and address in ipaddress.ip_network(item):
                    return True
            elif address is None and (host == item or host.endswith("." + item)):
                return True
        return False

    @property
    def fingerprint(self) -> str:
        return self.certificate.fingerprint(hashes.SHA256()).hex(":").upper()

    def mint_leaf(
        self,
        hostnames: Sequence[str],
        *,
        now: datetime,
        lifetime: timedelta = timedelta(days=1),
        backdate: timedelta = timedelta(minutes=5),
    ) -> tuple[bytes, bytes]:
        """Mint a server leaf for ``hostnames``; returns ``(cert PEM, PKCS8 key PEM)``.

        IP literals become IPAddress SANs, everything else DNS SANs (A-labels only).
        The CN is the first hostname when it is a DNS name within the 64-character limit.
        """
        _require_aware(now)
        if isinstance(hostnames, str) or not hostnames:
            raise ValueError("hostnames must be a non-empty sequence of names")
        sans = [_san(host) for host in hostnames]
        attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "latchkey")]
        # No CN for an IP literal: with name constraints OpenSSL checks a CN as a DNS name.
        if len(hostnames[0]) <= _MAX_CN and isinstance(sans[0], x509.DNSName):
            attrs.insert(0, x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0]))
        key = ec.generate_private_key(ec.SECP256R1())
        not_after = min(now + lifetime, self.certificate.not_valid_after_utc)
        try:
            ski = self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
            aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski.value)
        except x509.ExtensionNotFound:  # a CA made elsewhere without an SKI
            aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(self.private_key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attrs))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - backdate)
            .not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_LEAF_KEY_USAGE, critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .add_extension(aki, critical=False)
            .sign(self.private_key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM), _private_pem(key)


def _generate_ca(
    now: datetime, lifetime: timedelta, permitted: Sequence[str] | None
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    builder = x509.CertificateBuilder()
    if permitted is not None:
        subtrees = [permitted_subtree(item) for item in dict.fromkeys(permitted)]
        builder = builder.add_extension(
            x509.NameConstraints(permitted_subtrees=subtrees, excluded_subtrees=None),
            critical=True,  # RFC 5280 4.2.1.10
        )
    cert = (
        builder.subject_name(_CA_NAME)
        .issuer_name(_CA_NAME)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + lifetime)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_CA_KEY_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _parse_ca(
    cert_pem: bytes, key_pem: bytes, cert_name: str, key_name: str
) -> CertificateAuthority:
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        raise ValueError(f"{cert_name} is not a PEM certificate") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        raise ValueError(f"{key_name} is not an unencrypted PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError(f"CA key {key_name} is neither an EC nor an RSA private key")
    if key.public_key() != cert.public_key():
        raise ValueError(f"CA key {key_name} does not match certificate {cert_name}")
    return CertificateAuthority(cert_pem=cert_pem, private_key=key, certificate=cert)


def _load_ca(cert_path: Path, key_path: Path) -> CertificateAuthority:
    return _parse_ca(cert_path.read_bytes(), read_secret_file(key_path), str(cert_path),
                     str(key_path))  # fmt: skip


def import_ca(
    cert_pem: bytes, key_pem: bytes, cert_path: Path, key_path: Path, *, now: datetime
) -> CertificateAuthority:
    """Check an operator's CA (a CA certificate, valid now, signing allowed, the key matching)
    and install it as ``cert_path`` (0644) / ``key_path`` (0600, PKCS8)."""
    _require_aware(now)
    ca = _parse_ca(cert_pem, key_pem, "the certificate", "the key")
    cert = ca.certificate
    try:
        basic = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        basic = None
    if basic is None or not basic.ca:
        raise ValueError("the certificate is not a CA certificate (basicConstraints CA:TRUE)")
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        if not usage.key_cert_sign:
            raise ValueError("the certificate's keyUsage does not allow keyCertSign")
    except x509.ExtensionNotFound:
        pass
    if not cert.not_valid_before_utc <= now < cert.not_valid_after_utc:
        raise ValueError("the certificate is not valid now")
    pem = cert.public_bytes(serialization.Encoding.PEM)
    write_public_file(Path(cert_path), pem)
    write_secret_file(Path(key_path), _private_pem(ca.private_key))
    return CertificateAuthority(cert_pem=pem, private_key=ca.private_key, certificate=cert)


def load_or_create_ca(
    cert_path: Path,
    key_path: Path,
    *,
    now: datetime,
    lifetime: timedelta = timedelta(days=3650),
    permitted: Sequence[str] | None = None,
) -> CertificateAuthority:
    """Load the CA from ``cert_path``/``key_path`` or create a new one.

    If both files exist they are loaded (the key via ``read_secret_file``, so it
    must be ``0600``) and checked to match.  If neither exists, or only the
    certificate does (an interrupted creation: the cert is written first), a new
    CA is generated (name-constrained to ``permitted`` unless it is ``None``): cert mode
    ``0644``, key PKCS8 PEM mode ``0600``.  A key
    without its certificate is refused (``FileExistsError``) rather than overwritten.
    """
    _require_aware(now)
    cert_path, key_path = Path(cert_path), Path(key_path)
    if key_path.exists():
        if cert_path.exists():
            return _load_ca(cert_path, key_path)
        raise FileExistsError(
            f"CA key {key_path} exists but certificate {cert_path} is missing; "
            "refusing to overwrite the key (remove it to start a new CA)"
        )
    cert, key = _generate_ca(now, lifetime, permitted)
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    write_public_file(cert_path, cert_pem)
    write_secret_file(key_path, _private_pem(key))
    return CertificateAuthority(cert_pem=cert_pem, private_key=key, certificate=cert)
