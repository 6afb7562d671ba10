"""Tests for the TLS side of latchkey.crypto.x509: real handshakes and LeafCache."""

from __future__ import annotations

import socket
import ssl
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from latchkey.clock import FrozenClock
from latchkey.crypto import tls
from latchkey.crypto.x509 import (
    CertificateAuthority,
    LeafCache,
    client_ssl_context,
    load_or_create_ca,
    server_ssl_context,
)

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
AWS_HOST = "kms.us-east-1.amazonaws.com"


def _handshake(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, server_hostname: str
) -> tuple[str | None, dict[str, object]]:
    """Run one TLS handshake over 127.0.0.1; return (ALPN, server outcome)."""
    outcome: dict[str, object] = {}
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(10)
        port = listener.getsockname()[1]

        def serve() -> None:
            try:
                conn, _ = listener.accept()
                with conn:
                    conn.settimeout(10)
                    with server_ctx.wrap_socket(conn, server_side=True) as tls_conn:
                        tls_conn.sendall(b"pong:" + tls_conn.recv(4))
                        outcome["ok"] = True
            except (OSError, ssl.SSLError) as exc:
                outcome["error"] = exc

        thread = threading.Thread(target=serve)
        thread.start()
        try:
            with (
                socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
                client_ctx.wrap_socket(raw, server_hostname=server_hostname) as conn,
            ):
                conn.sendall(b"ping")
                assert conn.recv(16) == b"pong:ping"
                return conn.selected_alpn_protocol(), outcome
        finally:
            thread.join(timeout=10)
            assert not thread.is_alive()


def _client(ca_paths: tuple[Path, Path]) -> ssl.SSLContext:
    return client_ssl_context([ca_paths[0]], use_system_store=False)


# --- real TLS handshakes --------------------------------------------------------------


def test_minted_leaf_verifies_in_a_real_handshake(
    ca: CertificateAuthority, ca_paths: tuple[Path, Path]
) -> None:
    cert_pem, key_pem = ca.mint_leaf([AWS_HOST], now=datetime.now(UTC))
    alpn, outcome = _handshake(server_ssl_context(cert_pem, key_pem), _client(ca_paths), AWS_HOST)
    assert alpn == "http/1.1"
    assert outcome == {"ok": True}


def test_ip_literal_san_verifies(ca: CertificateAuthority, ca_paths: tuple[Path, Path]) -> None:
    cert_pem, key_pem = ca.mint_leaf(["127.0.0.1"], now=datetime.now(UTC))
    _, outcome = _handshake(server_ssl_context(cert_pem, key_pem), _client(ca_paths), "127.0.0.1")
    assert outcome == {"ok": True}


def test_leaf_passes_strict_x509_verification(
    ca: CertificateAuthority, ca_paths: tuple[Path, Path]
) -> None:
    client = _client(ca_paths)
    client.verify_flags |= ssl.VERIFY_X509_STRICT
    cert_pem, key_pem = ca.mint_leaf([AWS_HOST], now=datetime.now(UTC))
    _, outcome = _handshake(server_ssl_context(cert_pem, key_pem), client, AWS_HOST)
    assert outcome == {"ok": True}


def test_wrong_hostname_is_rejected(ca: CertificateAuthority, ca_paths: tuple[Path, Path]) -> None:
    cert_pem, key_pem = ca.mint_leaf([AWS_HOST], now=datetime.now(UTC))
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(server_ssl_context(cert_pem, key_pem), _client(ca_paths), "sts.amazonaws.com")


def test_untrusted_ca_is_rejected(ca: CertificateAuthority, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    load_or_create_ca(other / "ca.pem", other / "ca.key", now=NOW)
    cert_pem, key_pem = ca.mint_leaf([AWS_HOST], now=datetime.now(UTC))
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(
            server_ssl_context(cert_pem, key_pem),
            client_ssl_context([other / "ca.pem"], use_system_store=False),
            AWS_HOST,
        )


def test_server_context_leaves_no_key_files_behind(
    ca: CertificateAuthority, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "shm"
    scratch.mkdir()
    monkeypatch.setattr(tls, "_SHM", str(scratch))
    cert_pem, key_pem = ca.mint_leaf([AWS_HOST], now=NOW)
    ctx = server_ssl_context(cert_pem, key_pem, chain_pem=ca.cert_pem, alpn=("h2", "http/1.1"))
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert list(scratch.iterdir()) == []


def test_server_context_rejects_mismatched_key(ca: CertificateAuthority) -> None:
    cert_pem, _ = ca.mint_leaf([AWS_HOST], now=NOW)
    _, other_key = ca.mint_leaf([AWS_HOST], now=NOW)
    with pytest.raises(ssl.SSLError):
        server_ssl_context(cert_pem, other_key)


def test_client_context_defaults() -> None:
    for ctx in (client_ssl_context(), client_ssl_context(use_system_store=False)):
        assert ctx.verify_mode == ssl.CERT_REQUIRED
        assert ctx.check_hostname
        assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert client_ssl_context(use_system_store=False).get_ca_certs() == []


# --- LeafCache ------------------------------------------------------------------------


def test_leaf_cache_hits_and_misses(ca: CertificateAuthority) -> None:
    cache = LeafCache(ca, now=FrozenClock(NOW).now)
    first = cache.context_for("KMS.us-east-1.amazonaws.com")
    assert cache.context_for(AWS_HOST) is first
    assert (cache.hits, cache.misses) == (1, 1)
    cache.context_for("sts.amazonaws.com")
    assert (cache.hits, cache.misses) == (1, 2)


def test_leaf_cache_is_a_bounded_lru(ca: CertificateAuthority) -> None:
    cache = LeafCache(ca, now=FrozenClock(NOW).now, max_size=2)
    a = cache.context_for("a.example")
    cache.context_for("b.example")
    assert cache.context_for("a.example") is a  # a is now most recent
    cache.context_for("c.example")  # evicts b
    assert len(cache) == 2
    assert cache.context_for("a.example") is a
    misses = cache.misses
    cache.context_for("b.example")
    assert cache.misses == misses + 1


def test_leaf_cache_re_mints_after_80_percent_of_lifetime(ca: CertificateAuthority) -> None:
    clock = FrozenClock(NOW)
    cache = LeafCache(ca, now=clock.now, lifetime=timedelta(hours=10))
    first = cache.context_for(AWS_HOST)
    clock.advance(timedelta(hours=7, minutes=59).total_seconds())
    assert cache.context_for(AWS_HOST) is first
    clock.advance(timedelta(minutes=1).total_seconds())
    second = cache.context_for(AWS_HOST)
    assert second is not first
    assert (cache.hits, cache.misses) == (1, 2)
    assert cache.context_for(AWS_HOST) is second


def test_leaf_cache_context_serves_tls(
    ca: CertificateAuthority, ca_paths: tuple[Path, Path]
) -> None:
    cache = LeafCache(ca, now=lambda: datetime.now(UTC))
    alpn, outcome = _handshake(cache.context_for(AWS_HOST), _client(ca_paths), AWS_HOST)
    assert alpn == "http/1.1"
    assert outcome == {"ok": True}


def test_leaf_cache_is_thread_safe(ca: CertificateAuthority) -> None:
    cache = LeafCache(ca, now=FrozenClock(NOW).now, max_size=8)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(20):
                cache.context_for(f"h{(n + i) % 12}.example")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(cache) == 8
    assert cache.hits + cache.misses == 120


@pytest.mark.parametrize("kwargs", [{"max_size": 0}, {"lifetime": timedelta(0)}])
def test_leaf_cache_rejects_bad_settings(
    ca: CertificateAuthority, kwargs: dict[str, object]
) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        LeafCache(ca, now=FrozenClock(NOW).now, **kwargs)  # type: ignore[arg-type]
