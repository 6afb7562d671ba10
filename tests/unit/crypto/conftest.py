"""Shared fixtures for the crypto unit tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from latchkey.crypto.x509 import CertificateAuthority, load_or_create_ca

CA_NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture
def umask_zero() -> Iterator[None]:
    """Run the test with a umask of 0, so only explicit modes protect files."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def ca_paths(tmp_path: Path) -> tuple[Path, Path]:
    """Where the test CA's certificate and key live."""
    return tmp_path / "ca.pem", tmp_path / "ca.key"


@pytest.fixture
def ca(ca_paths: tuple[Path, Path]) -> CertificateAuthority:
    """A fresh CA created at ``CA_NOW``."""
    return load_or_create_ca(*ca_paths, now=CA_NOW)
