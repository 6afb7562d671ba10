"""Fixtures the local-cloud tests share (on the ``node`` fixture of tests/conftest.py); their
helpers live in ``latchkey_testing``. A module that needs more of the cloud (the STS modules'
role ``sts-test``) says so by overriding ``cloud``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from latchkey_testing import Cloud, NodeHandle


@pytest.fixture
def cloud(node: NodeHandle) -> Iterator[Cloud]:
    """The node; every boto3 client made through it is closed before the node stops."""
    made = Cloud(node)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def iam(cloud: Cloud) -> Any:
    return cloud.client("iam")


@pytest.fixture
def kms(cloud: Cloud) -> Any:
    return cloud.client("kms")
