"""Shared fixtures for the idp unit tests: keys made once, a frozen clock, a private umask."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator

import pytest

from latchkey.clock import FrozenClock
from latchkey.crypto.jwk import SigningKey

T0 = dt.datetime(2025, 3, 4, 5, 6, 7, tzinfo=dt.UTC)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(T0)


@pytest.fixture(scope="session")
def es256() -> SigningKey:
    return SigningKey.generate("ES256")


@pytest.fixture(scope="session")
def rs256() -> SigningKey:
    return SigningKey.generate("RS256")


@pytest.fixture
def umask_zero() -> Iterator[None]:
    """Only explicit modes protect files: a 0600 result is the code's doing, not the umask's."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)
